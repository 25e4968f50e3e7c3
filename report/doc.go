// Package report renders faultline results for people and their tools: text summaries for
// terminals; architecture diagrams (Mermaid, Graphviz DOT) where sync calls are solid lines,
// async messages dashed, datastores cylinders and brokers queues; and the design review as text
// for terminals (ReviewText), Markdown for pull-request comments (ReviewMarkdown), SARIF 2.1.0
// for GitHub code scanning and other SARIF viewers (SARIF), and a self-contained HTML page for
// people (ReviewHTML) whose architecture diagram is an SVG laid out here (svg_layout.go: layered,
// left to right, with no Graphviz needed at run time).
package report
