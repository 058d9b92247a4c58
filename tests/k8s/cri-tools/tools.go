//go:build tools

// Package tools names the command tests/k8s/build-crictl.sh builds, so that `go mod tidy`
// records every module it needs in go.mod and go.sum.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
