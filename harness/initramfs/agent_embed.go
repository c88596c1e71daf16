//go:build embedagent

package initramfs

import _ "embed"

// embeddedAgent is the static guest agent 'make build' compiled into
// agent.bin before building the harness with -tags embedagent: such a
// harness needs neither Go nor its checkout at run time.
//
//go:embed agent.bin
var embeddedAgent []byte
