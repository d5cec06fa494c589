"""The metadata service behind the router's 169.254.169.254 redirect, like Neutron's: a proxy
in each router namespace (port 9697) and the service it forwards to over a unix socket."""
