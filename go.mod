module github.com/udpipe/udpipe

go 1.26.0

require github.com/yuin/gopher-lua v1.1.2

require golang.org/x/sys v0.49.0

require layeh.com/gopher-luar v1.0.11
