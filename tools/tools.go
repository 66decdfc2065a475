// Package tools pins the build tools Vigil uses; see go.mod.
package tools
