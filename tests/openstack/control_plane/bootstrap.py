"""The service project, the services' users (admin in the service project) and their
endpoints, registered once while the image is built. The password, on standard input, is
the admin's and every service user's until rekey.py replaces them."""

import sys

import openstack

SERVICES = (  # user, service type, port, path
    ("nova", "compute", 8774, "/v2.1"),
    ("neutron", "network", 9696, ""),
    ("placement", "placement", 8778, ""),
    ("glance", "image", 9292, ""),
)


def main() -> None:
    password = sys.stdin.read().strip()
    cloud = openstack.connect(
        auth_url="http://127.0.0.1:5000/v3",
        username="admin",
        password=password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="regionOne",
    )
    identity = cloud.identity
    project = identity.find_project("service") or identity.create_project(
        name="service", domain_id="default"
    )
    admin = identity.find_role("admin")
    for user_name, kind, port, path in SERVICES:
        user = identity.find_user(user_name) or identity.create_user(
            name=user_name, password=password, domain_id="default"
        )
        identity.assign_project_role_to_user(project, user, admin)
        service = identity.find_service(user_name) or identity.create_service(
            name=user_name, type=kind
        )
        if not list(identity.endpoints(service_id=service.id)):
            for interface in ("public", "internal", "admin"):
                identity.create_endpoint(
                    service_id=service.id,
                    interface=interface,
                    region_id="regionOne",
                    url=f"http://127.0.0.1:{port}{path}",
                )


if __name__ == "__main__":
    main()
