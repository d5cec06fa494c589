"""Persistent state: tables, the only queries, the database and its migrations. Service code
reads ``store.X`` for tables and queries alike."""
from .queries import (add, allocated_ips, allocation_owner, allocations_on_subnet,  # noqa: F401
                      bump_generation, count, delete, deleted_routers, fips_where, generation,
                      get, list_all, ports_on_network, record_router_deleted, router_port_of,
                      router_ports, snapshot_rows, subnets_of, touch, try_allocate, used_vlans)
from .tables import (MODELS, Base, DeletedRouter, FloatingIP, IPAllocation, Meta,  # noqa: F401
                     Network, Port, Router, RouterPort, Subnet, utcnow)
