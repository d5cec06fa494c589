"""The Neutron API extensions floatip implements, as listed by ``/v2.0/extensions``."""
from __future__ import annotations




EXTENSIONS = {
    "router": ("Neutron L3 Router", "Router abstraction for layer 3 forwarding"),
    "external-net": ("Neutron external network", "Adds external network attribute"),
    "provider": ("Provider Network", "Expose mapping of virtual networks to physical networks"),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode",
                    "Extension of the router abstraction for specifying whether SNAT should occur"),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external application"),
    "fip-port-details": ("Floating IP Port Details", "Add port_details attribute to Floating IP"),
    "standard-attr-description": ("standard-attr-description", "Extension to add descriptions"),
    "standard-attr-revisions": ("Resource revision numbers", "Adds revision_number"),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at fields"),
    "project-id": ("project_id field enabled", "Extension that indicates project_id is enabled"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource"),
    "floatip-status-reason": ("Status reason", "Adds status_reason to routers and floating IPs: "
                              "why the agent reports them ERROR (null otherwise)"),
    "extraroute": ("Neutron Extra Route", "Extra routes configuration for L3 router"),
    "agent": ("agent", "The agent management extension."),
    "subnet-external-network": ("Subnet External Network", "Informs if the subnet is "
                                "associated to an external network."),
    "security-group": ("security-group", "The security groups extension."),
    "stateful-security-group": ("Stateful security group",
                                "Adds the stateful attribute to security groups"),
    "port-security": ("Port Security", "Provides port security"),
    "allowed-address-pairs": ("Allowed Address Pairs",
                              "Provides allowed address pairs"),
    "address-group": ("Address group", "Support address group"),
    "security-groups-remote-address-group": (
        "Remote address group id field for security group rules",
        "Add new field of remote address group id in security group rules"),
    "security-groups-normalized-cidr": (
        "Normalized CIDR field for security group rules",
        "Add new field with normalized remote_ip_prefix cidr in SG rule"),
    "standard-attr-tag": ("Tag support for resources with standard attribute: network, "
                          "subnet, port, router, floatingip, security_group",
                          "Enables to set tag on resources with standard attribute."),
    "quotas": ("Quota management support", "Expose functions for quotas management per "
               "project"),
    "quota_details": ("Quota details management support",
                      "Expose functions for quotas usage statistics per project"),
    "floating-ip-port-forwarding": ("Floating IP Port Forwarding", "Allow port forwarding "
                                    "from floating IP port to an internal port"),
    "floating-ip-port-forwarding-description": (
        "Floating IP Port Forwarding new attribute description",
        "Add a description field to Port Forwarding rules"),
    "floating-ip-port-forwarding-port-ranges": (
        "Floating IP Port Forwarding support port ranges", "Add support to port ranges"),
    "expose-port-forwarding-in-fip": (
        "Expose Floating IP port forwardings",
        "Expose port forwarding fields in floating IP response"),
    "rbac-policies": ("RBAC Policies", "Allows creation and modification of policies that "
                      "control tenant access to resources."),
    "subnet_allocation": ("Subnet Allocation", "Enables allocation of subnets from a subnet "
                          "pool"),
    "subnetpool-prefix-ops": ("Subnet Pool Prefix Operations",
                              "Provides support for adjusting the prefix list of subnet pools"),
    "default-subnetpools": ("Default Subnetpools", "Provides ability to mark and use a "
                            "subnetpool as the default."),
    "address-scope": ("Address scope", "Address scopes extension."),
    "rbac-subnetpool": ("Add subnetpool type to RBAC", "Add subnetpool type to RBAC"),
    "rbac-address-scope": ("Add address_scope type to RBAC",
                           "Add address_scope type to RBAC"),
    "qos": ("Quality of Service", "The Quality of Service extension."),
    "qos-bw-limit-direction": ("Direction for QoS bandwidth limit rule",
                               "Allow to configure QoS bandwidth limit rule with specific "
                               "direction: ingress or egress"),
    "qos-default": ("QoS default policy", "Expose the QoS default policy per project"),
    "qos-fip": ("Floating IP QoS", "The floating IP Quality of Service extension"),
    "qos-gateway-ip": ("Router gateway IP QoS",
                       "The Router gateway IP Quality of Service extension"),
    "qos-rule-type-details": ("Details of QoS rule types",
                              "Expose details about QoS rule types supported by loaded backend "
                              "drivers"),
    "pagination": ("Pagination support", "Extension that indicates that pagination is enabled."),
    "sorting": ("Sorting support", "Extension that indicates that sorting is enabled."),
    "filter-validation": ("Filter parameters validation",
                          "Provides validation on filter parameters."),
    "empty-string-filtering": ("Empty String Filtering Extension",
                               "Allow filtering by attributes with empty string value"),
    "floatip-metadata": ("floatip instance metadata",
                         "Port attributes floatip:user_data and floatip:public_keys, served to "
                         "the port's VM at 169.254.169.254"),
    "extra_dhcp_opt": ("Neutron Extra DHCP options",
                       "Extra options configuration for DHCP. For example PXE boot options to "
                       "DHCP clients can be specified (e.g. tftp-server, server-ip-address, "
                       "bootfile-name)"),
    "dns-integration": ("DNS Integration", "Provides integration with DNS."),
    "network-ip-availability": ("Network IP Availability",
                                "Provides IP availability data for each network and subnet."),
    "dns-domain-ports": ("dns_domain for ports",
                         "Allows the DNS domain to be specified for a network port."),
    "trunk": ("Trunk Extension", "Provides support for trunk ports"),
}
