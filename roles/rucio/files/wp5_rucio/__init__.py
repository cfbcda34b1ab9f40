"""The testbed's extensions to Rucio, installed beside it on the Rucio host.

Importing the package registers the gfal2 transfer tool (third-party copies driven by
gfal2 on the Rucio host, for sites without FTS3) under the name ``gfal2`` in Rucio's table
of transfer tools. The daemons are started through ``wp5_rucio.daemon`` so that the
registration happens before Rucio reads its configuration.
"""

from rucio.core import transfer as _transfer_core

from wp5_rucio.transfertool import Gfal2Transfertool

_transfer_core.TRANSFERTOOL_CLASSES_BY_NAME.setdefault(
    Gfal2Transfertool.external_name, Gfal2Transfertool
)

__all__ = ["Gfal2Transfertool"]
