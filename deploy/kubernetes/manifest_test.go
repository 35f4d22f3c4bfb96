// Package kubernetes holds the manifests that run mxflush as a Kubernetes
// CronJob of sharded flushes, and the test that checks them against
// Kubernetes' own API types and runs what they describe.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/mxflush/mxflush/internal/testnet"
)

// decode reads a manifest strictly into out: a field the API type does not
// have (a typo, a field of another version) fails, as does a duplicate.
func decode(t *testing.T, file string, out any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// expand is the kubelet's $(VAR) expansion (Kubernetes'
// third_party/forked/golang/expansion, as the API documents it for
// Container.Args and EnvVar.Value): $(NAME) is replaced by NAME's value
// when vars has it and left as it is when not; $$ is one $, so $$(NAME)
// is the literal $(NAME).
func expand(in string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		if in[i] != '$' || i+1 == len(in) {
			b.WriteByte(in[i])
			continue
		}
		switch in[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(in[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := in[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// containerEnv is the environment the kubelet gives the container of the
// pod of completion index idx: the manifest's entries in order, each
// value expanded with the entries before it, then JOB_COMPLETION_INDEX,
// which the Job controller adds after them. A value from the downward
// API annotation batch.kubernetes.io/job-completion-index is idx too.
func containerEnv(t *testing.T, c corev1.Container, idx int) ([]string, map[string]string) {
	t.Helper()
	vars := map[string]string{}
	var env []string
	set := func(k, v string) {
		vars[k] = v
		env = append(env, k+"="+v)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, vars))
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['"+batchv1.JobCompletionIndexAnnotation+"']":
			set(e.Name, strconv.Itoa(idx))
		default:
			t.Fatalf("env %s: a source this test cannot give (%+v)", e.Name, e.ValueFrom)
		}
	}
	set("JOB_COMPLETION_INDEX", strconv.Itoa(idx))
	return env, vars
}

// The expansion above is the kubelet's: an env value cannot refer to
// JOB_COMPLETION_INDEX, so a manifest that built --shard in an env entry
// would pass a literal $(JOB_COMPLETION_INDEX), which flush refuses.
func TestExpandLikeTheKubelet(t *testing.T) {
	c := corev1.Container{
		Env:  []corev1.EnvVar{{Name: "A", Value: "x"}, {Name: "SHARD", Value: "$(JOB_COMPLETION_INDEX)/4"}, {Name: "B", Value: "$(A)-$$(A)-$(NONE)"}},
		Args: []string{"--shard", "$(SHARD)", "$(JOB_COMPLETION_INDEX)/4", "$$(JOB_COMPLETION_INDEX)", "$(", "a$b"},
	}
	_, vars := containerEnv(t, c, 2)
	if vars["SHARD"] != "$(JOB_COMPLETION_INDEX)/4" || vars["B"] != "x-$(A)-$(NONE)" {
		t.Errorf("env values: %q", vars)
	}
	var args []string
	for _, a := range c.Args {
		args = append(args, expand(a, vars))
	}
	want := []string{"--shard", "$(JOB_COMPLETION_INDEX)/4", "2/4", "$(JOB_COMPLETION_INDEX)", "$(", "a$b"}
	if !slices.Equal(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}
}

// The manifests decode strictly into Kubernetes' own types and say what
// the README says; then the test runs, for each completion index at once,
// exactly the command, arguments and environment the kubelet would give
// its container (the spool and config volumes mounted at the test's
// directories, the image's binary built from this tree), over one spool:
// every recipient is delivered once, each shard exits 0 and prints its
// summary as JSON naming its shard.
func TestCronJobRunsTheShards(t *testing.T) {
	var cj batchv1.CronJob
	decode(t, "cronjob.yaml", &cj)
	var pvc corev1.PersistentVolumeClaim
	decode(t, "spool-pvc.yaml", &pvc)
	var cm corev1.ConfigMap
	decode(t, "config.yaml", &cm)
	if cj.APIVersion != "batch/v1" || cj.Kind != "CronJob" || pvc.Kind != "PersistentVolumeClaim" || cm.Kind != "ConfigMap" {
		t.Fatalf("kinds: %s %s, %s, %s", cj.APIVersion, cj.Kind, pvc.Kind, cm.Kind)
	}
	job := cj.Spec.JobTemplate.Spec
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if job.CompletionMode == nil || *job.CompletionMode != batchv1.IndexedCompletion || job.Completions == nil || job.Parallelism == nil || *job.Completions != *job.Parallelism {
		t.Fatalf("want completionMode Indexed and completions = parallelism")
	}
	n := int(*job.Completions)
	pod := job.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: podFailurePolicy needs Never", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	actions := map[int32]batchv1.PodFailurePolicyAction{}
	for _, r := range job.PodFailurePolicy.Rules {
		if r.OnExitCodes == nil {
			continue
		}
		if r.OnExitCodes.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn || *r.OnExitCodes.ContainerName != c.Name {
			t.Errorf("rule %+v: want operator In on container %s", r, c.Name)
		}
		for _, v := range r.OnExitCodes.Values {
			actions[v] = r.Action
		}
	}
	want := map[int32]batchv1.PodFailurePolicyAction{78: batchv1.PodFailurePolicyActionFailJob, 70: batchv1.PodFailurePolicyActionCount, 73: batchv1.PodFailurePolicyActionCount, 74: batchv1.PodFailurePolicyActionCount}
	for code, a := range want {
		if actions[code] != a {
			t.Errorf("exit %d: action %q, want %q", code, actions[code], a)
		}
	}
	for _, code := range []int32{0, 69} {
		if a, ok := actions[code]; ok {
			t.Errorf("exit %d has a rule (%s); 69 never happens with --mail-outcomes-ok", code, a)
		}
	}
	if !slices.Contains(c.Args, "--json") || !slices.Contains(c.Args, "--mail-outcomes-ok") {
		t.Errorf("args %q: want --json and --mail-outcomes-ok", c.Args)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("no memory request or limit")
	}
	if !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("spool claim access modes %v, want ReadWriteMany", pvc.Spec.AccessModes)
	}
	claims := map[string]string{} // volume -> claim or config map
	for _, v := range pod.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			claims[v.Name] = v.PersistentVolumeClaim.ClaimName
		case v.ConfigMap != nil:
			claims[v.Name] = v.ConfigMap.Name
		}
	}

	// The world: 6 domains on 127.0.0.2-7, one receiver each.
	var ips, records []string
	for d := range 6 {
		ip := fmt.Sprintf("127.0.0.%d", d+2)
		ips = append(ips, ip)
		records = append(records, fmt.Sprintf("d%d.test. MX 10 mx.d%d.test.", d, d), fmt.Sprintf("mx.d%d.test. A %s", d, ip))
	}
	dns, err := testnet.StartDNS(records...)
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	port, err := testnet.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	var recv []*testnet.Receiver
	for _, ip := range ips {
		r, err := testnet.StartSMTP(ip+":"+strconv.Itoa(port), testnet.SMTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		recv = append(recv, r)
	}

	// The volumes, mounted where the container has them.
	root := t.TempDir()
	mounts := map[string]string{} // container path -> test directory
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		mounts[m.MountPath] = dir
		switch claims[m.Name] {
		case pvc.Name:
			for _, q := range []string{"tmp", "new", "cur", "failed", "hold", "bad"} {
				if err := os.MkdirAll(filepath.Join(dir, q), 0o700); err != nil {
					t.Fatal(err)
				}
			}
		case cm.Name:
			// The ConfigMap's config.json, its settings kept, with the
			// test world's DNS server, port and EHLO name.
			var cfg map[string]any
			if err := json.Unmarshal([]byte(cm.Data["config.json"]), &cfg); err != nil {
				t.Fatalf("config.json of the ConfigMap: %v", err)
			}
			maps.Copy(cfg, map[string]any{"dns": dns.Addr(), "port": port, "helo": "relay.test", "connect_timeout": "5s", "command_timeout": "10s"})
			b, _ := json.Marshal(cfg)
			os.MkdirAll(dir, 0o755)
			for k := range cm.Data {
				data := cm.Data[k]
				if k == "config.json" {
					data = string(b)
				}
				if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("volume mount %s: no volume", m.Name)
		}
	}
	mounted := func(p string) string {
		for mp, dir := range mounts {
			if p == mp || strings.HasPrefix(p, mp+"/") {
				return dir + strings.TrimPrefix(p, mp)
			}
		}
		return p
	}
	spoolDir := mounts["/var/spool/mxflush"]
	if spoolDir == "" {
		t.Fatalf("no volume mounted at /var/spool/mxflush: %+v", c.VolumeMounts)
	}
	wantRcpt := map[string]bool{}
	for i := range 300 {
		var env strings.Builder
		env.WriteString("X-Envelope-From: <alice@example.test>\n")
		doms := []int{i % 6}
		if i%5 == 0 {
			doms = append(doms, (i+2)%6, (i+4)%6)
		}
		for _, d := range doms {
			rcpt := fmt.Sprintf("m%03d@d%d.test", i, d)
			wantRcpt[rcpt] = true
			fmt.Fprintf(&env, "X-Envelope-To: <%s>\n", rcpt)
		}
		name := fmt.Sprintf("1732880000.M%d.P1.test", i)
		if err := os.WriteFile(filepath.Join(spoolDir, "new", name), []byte(env.String()+"Subject: x\r\n\r\nbody\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The image's binary, where the command names it.
	bin := filepath.Join(t.TempDir(), "mxflush")
	if out, err := exec.Command("go", "build", "-o", bin, "../..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/mxflush" {
		t.Fatalf("command %q, want the image's /usr/local/bin/mxflush", c.Command)
	}

	var wg sync.WaitGroup
	for idx := range n {
		env, vars := containerEnv(t, c, idx)
		var args []string
		for _, a := range c.Args {
			args = append(args, mounted(expand(a, vars)))
		}
		for i, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			env[i] = k + "=" + mounted(v)
		}
		if strings.Contains(strings.Join(args, " "), "$(") {
			t.Errorf("index %d: args %q keep an unexpanded reference", idx, args)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = env // the container's environment, nothing of this process's
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			var sum struct {
				Shard    string `json:"shard"`
				ExitCode int    `json:"exit_code"`
			}
			if code != 0 || json.Unmarshal(out.Bytes(), &sum) != nil || sum.Shard != fmt.Sprintf("%d/%d", idx, n) || sum.ExitCode != 0 {
				t.Errorf("index %d (%q): exit %d, summary %+v\n%s%s", idx, args, code, sum, out.String(), errb.String())
			}
		})
	}
	wg.Wait()
	got := map[string]int{}
	for _, r := range recv {
		for _, m := range r.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
	}
	for rcpt := range wantRcpt {
		if got[rcpt] != 1 {
			t.Errorf("%s received %d times, want once", rcpt, got[rcpt])
		}
	}
	if len(got) != len(wantRcpt) {
		t.Errorf("%d recipients received, want %d", len(got), len(wantRcpt))
	}
}
