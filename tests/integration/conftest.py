"""Real Redis servers (tests/support/redis_fixtures.py) for the integration tier.

e2e/conftest.py imports the same fixtures: a whole run starts one shared fleet per tier, so
that the unit tier, beside both, sees none of them."""

from __future__ import annotations

from redis_fixtures import make_fleet, redis_clean, redis_fleet, redis_fleet_acl  # noqa: F401
