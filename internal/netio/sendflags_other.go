//go:build !linux

package netio

const sendFlags = 0
