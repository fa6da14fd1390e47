//go:build tools

// Package tools pins the pulumi command, so go.mod/go.sum list exactly what building it needs.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
