import CofferServer
import Testing

struct ServerConfigurationTests {
    /// The commit thread keeps a core: one loop per core but one, never none.
    @Test(arguments: [(0, 1), (1, 1), (2, 1), (3, 2), (4, 3), (16, 15)])
    func defaultEventLoopsLeaveACoreToTheCommitter(cores: Int, loops: Int) {
        #expect(ServerConfiguration.defaultEventLoops(cores: cores) == loops)
    }
}
