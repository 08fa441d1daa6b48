import Foundation
import Testing

@testable import CofferCore

@Suite struct LocalPathTests {
    @Test(arguments: [
        ("d", "."), ("d/", "."), ("/d", "/"), ("/", "/"), ("a/b", "a"), ("a/b//", "a"), ("a//b", "a"),
        ("./x/../d", "./x/.."), ("", "."),
    ])
    func parent(path: String, expected: String) {
        #expect(LocalPath.parent(path) == expected)
    }

    @Test func joinUsesExactlyOneSlash() {
        #expect(LocalPath.join("d", "coffer.db") == "d/coffer.db")
        #expect(LocalPath.join("d//", "coffer.db") == "d/coffer.db")
        #expect(LocalPath.join("/", "coffer.db") == "/coffer.db")
    }

    @Test func canonicalResolvesSymlinksAndDotsOfPathsThatDoNotExistYet() throws {
        let root = try #require(LocalPath.resolved(FileManager.default.temporaryDirectory.path)) + "/lp-\(UUID())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(mkdir(root, 0o700) == 0 && mkdir(root + "/real", 0o700) == 0)
        #expect(symlink("real", root + "/link") == 0)
        #expect(try LocalPath.canonical(root + "/link/new/./x/../y/") == root + "/real/new/y")
        #expect(try LocalPath.canonical(root + "/link") == root + "/real")
        #expect(LocalPath.isWithin(root + "/real/a", root + "/real"))
        #expect(!LocalPath.isWithin(root + "/reality", root + "/real"))
    }
}
