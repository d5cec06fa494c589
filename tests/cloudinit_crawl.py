"""Run by /usr/bin/python3 inside a VM's namespace: cloud-init's own metadata readers (the
code its OpenStack and EC2 datasources crawl with) against 169.254.169.254; prints JSON."""
import json
import sys

from cloudinit.sources.helpers import ec2, openstack

BASE = "http://169.254.169.254"
os_reader = openstack.MetadataReader(BASE, timeout=5, retries=1)
v2 = os_reader.read_v2()
out = {
    "openstack": {"metadata": v2["metadata"], "userdata": v2["userdata"].decode()
                  if isinstance(v2["userdata"], bytes) else v2["userdata"],
                  "networkdata": v2.get("networkdata"),
                  "network_config": openstack.convert_net_json(
                      v2.get("networkdata"), known_macs={sys.argv[1]: "eth0"})
                  if len(sys.argv) > 1 else None},
    "ec2": ec2.get_instance_metadata(metadata_address=BASE, timeout=5, retries=1),
    "ec2_userdata": ec2.get_instance_userdata(metadata_address=BASE, timeout=5,
                                              retries=1).decode(),
}
print(json.dumps(out, default=str))
