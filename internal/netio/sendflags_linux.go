package netio

import "syscall"

// sendFlags: no SIGPIPE on a reset connection (the runtime ignores it anyway off fds 1 and 2).
const sendFlags = syscall.MSG_NOSIGNAL
