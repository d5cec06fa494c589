"""Persistent state: tables, the only queries, the database and its migrations. Service code
reads ``store.X`` for tables and queries alike."""
from .queries import (add,  # noqa: F401
                      bump_generation, changes_held, changes_since, count, delete, delete_unreferenced,
                      deleted_routers, feed_position, fips_where, generation, get, instance_id, list_all,
                      load_many, page, port_backs, port_uses, ports_on_network, prune_changes,
                      qos_bindings, qos_rules_of, record_qos_change,
                      record_router_deleted, release_fips_of, router_for_subnet, router_port_of,
                      router_ports, routers_with_gateway, rows_for, select_changes,
                      snapshot_rows, subnets_of, subnets_on_shared, touch, used_vlans)
from .tables import (MODELS, AddressGroup, AddressScope, AddressScopeRbac, Base, Change, DefaultSecurityGroup,  # noqa: F401
                     DeletedRouter, FloatingIP, Info, IPAllocation, Meta, Network, NetworkRbac, Port,
                     PortForwarding, PortSecurityGroup, QosBandwidthLimitRule, QosPolicy,
                     Quota, Router, RouterPort, SecurityGroup,
                     SecurityGroupRule, SubPort, Subnet, SubnetPool, SubnetPoolRbac, Tag, Trunk,
                     utcnow)
from .sg_queries import (count_where, default_group_id, groups_of_port,  # noqa: F401
                         groups_of_ports, ports_of_group, rules_with_address_group,
                         rules_with_remote_group, set_port_groups, sg_rows_for,
                         sg_snapshot_rows)
from .quota_queries import (count_owned, delete_quota_limits, lock_quota,  # noqa: F401
                            quota_limits, set_quota_limit)
from .ip_queries import (allocate_among, allocated_among, allocated_ips, allocation_owner,  # noqa: F401
                         allocations_on_subnet, insert_unless_taken, networks_with_subnets,
                         port_addresses,
                         try_allocate,
                         used_per_subnet)
from .tag_queries import add_tags, remove_tags, tag_condition, tags_of  # noqa: F401
from .fip_queries import delete_fip_unless_forwarded  # noqa: F401
