// Package report renders faultline results for people and their tools: text summaries for
// terminals; architecture diagrams (Mermaid, Graphviz DOT) where sync calls are solid lines,
// async messages dashed, datastores cylinders and brokers queues; and the design review as text
// for terminals (ReviewText), Markdown for pull-request comments (ReviewMarkdown) and SARIF 2.1.0
// for GitHub code scanning and other SARIF viewers (SARIF).
package report
