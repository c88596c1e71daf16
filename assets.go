// Package zswaprace holds what the harness needs from its checkout at run
// time, embedded so that a bin/harness copied anywhere needs no checkout:
// the kernel config fragments (kconfigs/) and the bundled patches
// (patches/). The harness itself is in harness/, the guest agent in guest/.
package zswaprace

import "embed"

// Assets holds kconfigs/*.config and patches/*.patch, at those paths.
//
//go:embed kconfigs/*.config patches/*.patch
var Assets embed.FS
