@main struct Coffer { static func main() {} }
