"""The testbed's extensions to Rucio, installed beside it on the Rucio host.

``wp5_rucio.daemon`` starts Rucio's daemons with the gfal2 transfer tool (third-party
copies driven by gfal2 on the Rucio host, for sites without FTS3) registered under the name
``gfal2`` in Rucio's table of transfer tools. The package itself imports nothing from
Rucio: a transfer worker, one process per copy, needs only gfal2 and its job record, and
Rucio's modules take seconds to import.
"""
