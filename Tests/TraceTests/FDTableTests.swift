import Testing
@testable import SyscallTrace

@Suite struct FDTableTests {
    @Test func reusedNumbersFollowLifetimes() {
        var t = FDTable()
        t.opened(3, socket: 100)
        #expect(t[3] == .socket(100))
        t.closed(3)
        #expect(t[3] == nil)
        t[3] = .other
        t.opened(3, socket: 200)
        #expect(t[3] == .socket(200))
    }
}
