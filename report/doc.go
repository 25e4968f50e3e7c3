// Package report renders faultline results for people: text summaries for terminals and
// architecture diagrams (Mermaid, Graphviz DOT) where sync calls are solid lines, async messages
// dashed, datastores cylinders and brokers queues.
package report
