import ArgumentParser

/// How a root key is split: `init`, `seal migrate` and `operator rekey` take the same two options.
struct ShareCounts: ParsableArguments {
    @Option(name: .long, help: "Key shares to split the root key into (1-255).")
    var shares = 5

    @Option(name: .long, help: "Shares needed to unseal (2 or more; 1 only with --shares 1, a dev vault).")
    var threshold = 3
}
