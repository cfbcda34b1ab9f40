"""Create Rucio's schema, its version stamp and the root account, each only when missing.

Each step is checked on its own, so a run interrupted half-way is finished by the next.
The root account gets only the userpass identity from [bootstrap] in rucio.cfg (the other
identity kinds are left empty there, so no well-known default key is registered).
"""

from __future__ import annotations

import sys

from alembic import command
from alembic.config import Config
from rucio.common.config import config_get
from rucio.db.sqla import models
from rucio.db.sqla.session import get_engine
from rucio.db.sqla.util import create_base_vo, create_root_account
from sqlalchemy import Engine, inspect, text


def _exists(engine: Engine, query: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(text(query)).first() is not None


def main() -> int:
    engine = get_engine()
    done = []
    if not inspect(engine).has_table("accounts"):
        models.register_models(engine)
        done.append("schema created")
    if not inspect(engine).has_table("alembic_version"):
        command.stamp(Config(config_get("alembic", "cfg")), "head")
        done.append("schema version stamped")
    if not _exists(engine, "SELECT 1 FROM vos WHERE vo = 'def'"):
        create_base_vo()
        done.append("base VO created")
    if not _exists(engine, "SELECT 1 FROM accounts WHERE account = 'root'"):
        create_root_account()
        done.append("root account created")
    print("; ".join(done) if done else "schema and root account present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
