#!/bin/bash
# Configures, once while the image is built, a single-container OpenStack control plane from
# Debian 12's packages: MariaDB, RabbitMQ, Keystone, Placement, Glance, Neutron (ML2 with a
# binding-only mechanism driver, no agents) and Nova with the fake compute driver (and fake
# PCI devices). Workers
# are cut to fit a 2-core machine. Passwords made here are replaced by rekey.py whenever a
# container starts from the image.
set -euo pipefail
here=/root/os
ks=http://127.0.0.1:5000
set_ini() { python3 "$here/ini.py" "$@"; }                # value on standard input
put() { local file=$1 section=$2 key=$3; shift 3; printf '%s' "$*" | set_ini "$file" "$section" "$key"; }

db_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
service_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
db="mysql+pymysql://os:${db_password}@127.0.0.1"

for unit in keystone placement-api glance-api neutron-api neutron-rpc-server nova-api \
  nova-conductor nova-scheduler nova-compute nova-api-metadata; do
  systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
systemctl disable --now open-iscsi iscsid.socket >/dev/null 2>&1 || true
for file in /etc/keystone/keystone-uwsgi.ini /etc/glance/glance-api-uwsgi.ini \
  /etc/placement/placement-api-uwsgi.ini; do
  sed -i -E 's/^processes = .*/processes = 1/; s/^threads = .*/threads = 8/' "$file"
done
# nova-api and neutron-api are not safe with threads under uWSGI (eventlet): they hung or
# reset connections under load. Two processes of one thread each.
for file in /etc/nova/nova-api-uwsgi.ini /etc/neutron/neutron-api-uwsgi.ini; do
  sed -i -E 's/^processes = .*/processes = 2/; s/^threads = .*/threads = 1/' "$file"
done

# MariaDB: one user for every service's database, on loopback only.
printf '[mysqld]\nmax_connections=500\nbind-address=127.0.0.1\n' > /etc/mysql/mariadb.conf.d/99-openstack.cnf
systemctl enable --now mariadb rabbitmq-server >/dev/null 2>&1
systemctl restart mariadb
mysql <<SQL
CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '${db_password}';
GRANT ALL ON *.* TO 'os'@'127.0.0.1';
SQL
for name in keystone placement glance neutron nova_api nova nova_cell0; do
  mysql -e "CREATE DATABASE IF NOT EXISTS $name"
done

authtoken() { # file user service-type (whose access rules keystonemiddleware enforces)
  put "$1" keystone_authtoken www_authenticate_uri $ks
  put "$1" keystone_authtoken auth_url $ks
  put "$1" keystone_authtoken auth_type password
  put "$1" keystone_authtoken project_domain_name Default
  put "$1" keystone_authtoken user_domain_name Default
  put "$1" keystone_authtoken project_name service
  put "$1" keystone_authtoken username "$2"
  put "$1" keystone_authtoken password "$service_password"
  put "$1" keystone_authtoken region_name regionOne
  put "$1" keystone_authtoken service_type "$3"
  crudini --del "$1" keystone_authtoken memcached_servers || true
}
service_auth() { # file section user
  put "$1" "$2" auth_url $ks
  put "$1" "$2" auth_type password
  put "$1" "$2" project_domain_name Default
  put "$1" "$2" user_domain_name Default
  put "$1" "$2" region_name regionOne
  put "$1" "$2" project_name service
  put "$1" "$2" username "$3"
  put "$1" "$2" password "$service_password"
}

# Keystone
conf=/etc/keystone/keystone.conf
put $conf database connection "$db/keystone"
put $conf token provider fernet
su -s /bin/sh keystone -c "keystone-manage db_sync"
keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
OS_BOOTSTRAP_PASSWORD=$service_password keystone-manage bootstrap \
  --bootstrap-admin-url $ks/v3/ --bootstrap-internal-url $ks/v3/ \
  --bootstrap-public-url $ks/v3/ --bootstrap-region-id regionOne
systemctl enable keystone >/dev/null 2>&1
systemctl restart keystone

# Placement
conf=/etc/placement/placement.conf
put $conf placement_database connection "$db/placement"
put $conf api auth_strategy keystone
authtoken $conf placement placement
su -s /bin/sh placement -c "placement-manage db sync"

# Glance: images on the container's file system.
conf=/etc/glance/glance-api.conf
put $conf database connection "$db/glance"
put $conf paste_deploy flavor keystone
authtoken $conf glance image
put $conf DEFAULT enabled_backends file:file
put $conf DEFAULT workers 1
put $conf glance_store default_backend file
put $conf file filesystem_store_datadir /var/lib/glance/images/
install -d -o glance -g glance /var/lib/glance/images
su -s /bin/sh glance -c "glance-manage db_sync"

# Neutron: ML2 without agents; fakebind binds the ports.
cp $here/fakebind.py /usr/lib/python3/dist-packages/
dist=/usr/lib/python3/dist-packages/fakebind-0.1.dist-info
mkdir -p $dist
printf 'Metadata-Version: 2.1\nName: fakebind\nVersion: 0.1\n' > $dist/METADATA
printf '[neutron.ml2.mechanism_drivers]\nfakebind = fakebind:FakeBindDriver\n' > $dist/entry_points.txt
conf=/etc/neutron/neutron.conf
ml2=/etc/neutron/plugins/ml2/ml2_conf.ini
put $conf DEFAULT core_plugin ml2
put $conf DEFAULT service_plugins router
put $conf DEFAULT auth_strategy keystone
put $conf DEFAULT transport_url rabbit://guest:guest@127.0.0.1:5672/
for option in rpc_workers rpc_state_report_workers api_workers; do put $conf DEFAULT $option 1; done
put $conf DEFAULT notify_nova_on_port_status_changes true
put $conf DEFAULT notify_nova_on_port_data_changes true
put $conf database connection "$db/neutron"
authtoken $conf neutron network
service_auth $conf nova nova
put $conf oslo_concurrency lock_path /var/lib/neutron/tmp
put $ml2 ml2 type_drivers flat,vlan,vxlan
put $ml2 ml2 tenant_network_types vxlan
put $ml2 ml2 mechanism_drivers fakebind
put $ml2 ml2 extension_drivers port_security
put $ml2 ml2_type_vxlan vni_ranges 1:1000
put $ml2 ml2_type_flat flat_networks '*'
put $ml2 ml2_type_vlan network_vlan_ranges physnet1:100:200
su -s /bin/sh neutron -c "neutron-db-manage --config-file $conf --config-file $ml2 upgrade head" >/root/neutron-db.log 2>&1

# Nova: api, conductor, scheduler and a compute service with the fake driver (no VMs).
conf=/etc/nova/nova.conf
put $conf DEFAULT transport_url rabbit://guest:guest@127.0.0.1:5672/
put $conf DEFAULT my_ip 127.0.0.1
put $conf DEFAULT host fake-compute
put $conf DEFAULT enabled_apis osapi_compute
put $conf api auth_strategy keystone
put $conf api_database connection "$db/nova_api"
put $conf database connection "$db/nova"
authtoken $conf nova compute
service_auth $conf placement placement
service_auth $conf neutron neutron
# Nova acts for users with its own service token too (required since CVE-2023-2088), so a
# user's access rules govern only the user's own requests.
service_auth $conf service_user nova
put $conf service_user send_service_user_token true
put $conf glance api_servers http://127.0.0.1:9292
put $conf conductor workers 1
put $conf scheduler workers 1
put $conf scheduler discover_hosts_in_cells_interval 10
put $conf vnc enabled false
put $conf oslo_concurrency lock_path /var/lib/nova/tmp
# The fake driver with three fake SR-IOV functions on physnet1, where the sites' fabric
# networks are: servers with `direct` ports are scheduled and their ports bound to a VF.
cp $here/fakepci.py /usr/lib/python3/dist-packages/nova/virt/fakepci.py
put /etc/nova/nova-compute.conf DEFAULT compute_driver fakepci.FakePciDriver
put $conf pci device_spec '{"address": "*:*:*.*", "physical_network": "physnet1"}'
put $conf filter_scheduler enabled_filters \
  ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,PciPassthroughFilter
su -s /bin/sh nova -c "nova-manage api_db sync"
# The cells' URLs are templates filled from nova.conf, so new passwords reach them too.
su -s /bin/sh nova -c "nova-manage cell_v2 map_cell0 \
  --database_connection '{scheme}://{username}:{password}@{hostname}/nova_cell0'"
su -s /bin/sh nova -c "nova-manage cell_v2 create_cell --name=cell1 \
  --database_connection '{scheme}://{username}:{password}@{hostname}/{path}' \
  --transport-url '{scheme}://{username}:{password}@{hostname}:{port}/'" || true
su -s /bin/sh nova -c "nova-manage db sync"

# The services' users and endpoints; rekey.py runs the rest (passwords, addresses, start).
(umask 077 && printf '%s' "$service_password" > $here/build-password)
python3 $here/bootstrap.py < $here/build-password
rm -f $here/build-password
