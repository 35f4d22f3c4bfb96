<?php
// Sends one message with Symfony Mailer's SendmailTransport in -bs mode
// (the default transport of Symfony and Laravel): argv[1] is the sendmail
// command, argv[2] the autoloader, argv[3] the number of body lines.
require $argv[2];

use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport\SendmailTransport;
use Symfony\Component\Mime\Email;

$body = "hello from symfony\n.dot line\n" . str_repeat(str_repeat("x", 70) . "\n", (int)$argv[3]);
$email = (new Email())
    ->from('App <app@example.test>')
    ->to('user@a.test')
    ->bcc('hidden@b.test')
    ->subject('Symfony -bs')
    ->text($body);
try {
    (new Mailer(new SendmailTransport($argv[1])))->send($email);
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
echo "sent\n";
