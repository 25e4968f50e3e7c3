package review

import "testing"

func TestDualWrite(t *testing.T) {
	sys := system(t, `services:
  - {name: order, datastores: [orderdb]}
  - {name: billing}
  - {name: shipping, datastores: [shipdb]}
  - {name: notifier}
  - {name: ledger, datastores: [ledgerdb]}
datastores:
  - {name: orderdb}
  - {name: billdb}
  - {name: shipdb}
  - {name: ledgerdb}
brokers:
  - {name: bus}
  - {name: audit}
edges:
  - {from: order, to: bus, protocol: kafka, topics: [orders.placed]}
  - {from: order, to: audit, protocol: amqp}
  - {from: billing, to: billdb, protocol: sql, policy: {timeout: 1s}}
  - {from: billing, to: bus, protocol: kafka}
  - {from: shipping, to: bus, protocol: kafka, outbox: true}
  - {from: notifier, to: bus, protocol: kafka}
  - {from: ledger, to: audit, protocol: amqp, transaction: xa}
`)
	resExpect(t, findings(t, sys, "dual-write", nil),
		resWant{"billing,billing → bus", Warning, []string{"billing writes billdb and publishes to bus with no outbox"}},
		resWant{"order,order → bus,order → audit", Warning, []string{"order writes orderdb and publishes to bus (orders.placed), audit with no outbox"}},
	)
}

func TestDistributedTransactionOnHotPath(t *testing.T) {
	sys := system(t, `services:
  - {name: web}
  - {name: order}
  - {name: payment, datastores: [paydb]}
  - {name: worker, role: worker}
datastores:
  - {name: paydb}
  - {name: reportdb}
brokers:
  - {name: bus}
edges:
  - {from: web, to: order, protocol: http}
  - {from: order, to: payment, protocol: http, transaction: 2pc}
  - {from: payment, to: paydb, protocol: sql, transaction: xa}
  - {from: order, to: bus, protocol: kafka, outbox: true}
  - {from: bus, to: worker, protocol: kafka}
  - {from: worker, to: reportdb, protocol: sql, transaction: xa}
  - {from: worker, to: order, protocol: http, transaction: saga}
entrypoints:
  - {name: checkout, service: web}
  - {name: pay, service: web}
`)
	resExpect(t, findings(t, sys, "distributed-transaction-on-hot-path", nil),
		resWant{"order → payment", Error, []string{"a 2PC transaction on the sync path of entrypoints checkout, pay (web → order → payment)"}},
		resWant{"payment → paydb", Error, []string{"an XA transaction on the sync path of entrypoints checkout, pay (web → order → payment → paydb)"}},
		resWant{"worker → reportdb", Warning, []string{"worker → reportdb takes part in an XA transaction"}},
	)
	quiet := system(t, `services:
  - {name: web}
  - {name: order}
edges:
  - {from: web, to: order, protocol: http, transaction: saga}
`)
	resExpect(t, findings(t, quiet, "distributed-transaction-on-hot-path", nil))
}

// Without declared entrypoints, the uncalled services that serve clients are the entry services: a
// worker fed by a broker is not, so its XA transaction is a warning.
func TestDistributedTransactionUndeclaredEntrypoints(t *testing.T) {
	sys := system(t, `services:
  - {name: api}
  - {name: ledger}
  - {name: worker, role: worker}
  - {name: consumer}
datastores:
  - {name: ledgerdb}
  - {name: reportdb}
brokers:
  - {name: bus}
edges:
  - {from: api, to: ledger, protocol: grpc, transaction: 2pc}
  - {from: ledger, to: ledgerdb, protocol: sql, transaction: xa}
  - {from: api, to: bus, protocol: kafka, outbox: true}
  - {from: bus, to: consumer, protocol: kafka}
  - {from: consumer, to: reportdb, protocol: sql, transaction: xa}
  - {from: worker, to: reportdb, protocol: sql, transaction: 2pc}
`)
	resExpect(t, findings(t, sys, "distributed-transaction-on-hot-path", nil),
		resWant{"api → ledger", Error, []string{"on the sync path of entrypoint api (api → ledger)"}},
		resWant{"ledger → ledgerdb", Error, []string{"entrypoint api (api → ledger → ledgerdb)"}},
		resWant{"consumer → reportdb", Warning, []string{"an XA transaction"}},
		resWant{"worker → reportdb", Warning, []string{"a 2PC transaction"}},
	)
}
