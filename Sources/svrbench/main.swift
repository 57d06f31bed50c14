// svrbench: micro-benchmarks. `svrbench help` lists them.
Bench.main(CommandLine.arguments)
