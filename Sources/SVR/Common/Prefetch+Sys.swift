// The CPU's prefetch hint, from CShim (Swift has no way to emit it). Used where a packet is
// about to touch several cold, independent cache lines (session index slots, a new row):
// asking for all of them first lets their memory latencies overlap instead of adding up.

internal import CShim

enum Prefetch {
    @inline(__always)
    static func line(_ p: UnsafeRawPointer) { svr_prefetch(p) }
}
