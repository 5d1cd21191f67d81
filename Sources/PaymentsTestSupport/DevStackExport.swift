// The local-stack helpers (child processes, PostgreSQL clusters, free ports) live in DevStack,
// which `payments dev` uses too; tests get them through this module.
@_exported import DevStack
