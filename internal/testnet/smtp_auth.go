package testnet

import (
	"slices"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// AuthMechanisms offers AUTH when the receiver has users (go-smtp offers it
// only under TLS unless InsecureAuth).
func (s *session) AuthMechanisms() []string {
	if s.r.o.AuthUsers == nil {
		return nil
	}
	if s.r.o.AuthMechs != nil {
		return s.r.o.AuthMechs
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth checks PLAIN or LOGIN credentials against AuthUsers.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(s.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(user, pass string) error {
		want, ok := s.r.o.AuthUsers[user]
		good := ok && want == pass
		s.r.mu.Lock()
		s.r.auths = append(s.r.auths, AuthAttempt{Session: s.id, Mech: mech, User: user, OK: good, TLS: s.tls})
		s.r.mu.Unlock()
		if !good {
			return smtp.ErrAuthFailed // 535 5.7.8
		}
		s.auth = true
		return nil
	}
	if mech == sasl.Plain {
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	}
	return &loginServer{check: check}, nil
}

// loginServer is the server side of AUTH LOGIN: "Username:", then
// "Password:" (draft-murchison-sasl-login). An initial response is the user
// name.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case l.step == 0 && resp == nil:
		l.step = 1
		return []byte("Username:"), false, nil
	case l.step <= 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}
