package awslocal

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Lambda is a function binary running under the runtime interface emulator.
type Lambda struct {
	// InvokeURL takes an event as a POST body and answers the function's
	// response.
	InvokeURL string
	out       *syncBuffer
	cmd       *exec.Cmd
}

// StartLambda runs the bootstrap binary under the emulator with env (plus
// what the emulator itself needs) until the test ends.
func StartLambda(t testing.TB, bootstrap string, env ...string) *Lambda {
	t.Helper()
	rie := Tool(t, "bin/aws-lambda-rie")
	p1, p2 := FreePort(t), FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", p1)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", p2), bootstrap)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_FUNCTION_TIMEOUT=30", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_REGION="+Region, "AWS_DEFAULT_REGION="+Region,
		"AWS_ACCESS_KEY_ID="+AccessKey, "AWS_SECRET_ACCESS_KEY="+SecretKey)
	cmd.Env = append(cmd.Env, env...)
	Start(t, cmd, addr, 30*time.Second)
	l := &Lambda{InvokeURL: "http://" + addr + "/2015-03-31/functions/function/invocations", cmd: cmd}
	l.out = cmd.Stdout.(*syncBuffer)
	return l
}

// Stop ends the emulator and the function before the test does.
func (l *Lambda) Stop() {
	l.cmd.Process.Kill()
}

// Output returns what the emulator and the function printed so far.
func (l *Lambda) Output() string { return l.out.String() }
