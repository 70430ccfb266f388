//! Every option group of trove.conf, declared once.
//!
//! Names, types and defaults are Trove's (and those of the oslo libraries Trove uses:
//! oslo.messaging, oslo.db, keystonemiddleware, oslo.policy). The declarations below are the
//! single source of truth for the typed structs, the loader and the sample file.
//!
//! To add an option, add one line to its group; to add a group, declare it with
//! [`opt_group!`](crate::meta) and list it in `config_groups!` at the bottom.

use std::collections::BTreeMap;
use std::net::IpAddr;

use url::Url;

use crate::meta::{datastore_group, opt_group, ABSENT, CPUS, UNSET};
use crate::types::{PortRange, Secret};

opt_group! {
    /// `[DEFAULT]`: Trove's own options, oslo.messaging's transport options and logging.
    pub struct DefaultOpts("DEFAULT") {
        // --- Production guide: RPC security, networking, quotas, timeouts.
        enable_secure_rpc_messaging: bool = "true",
            "Encrypt RPC traffic from the API to the taskmanager and give every new instance \
             its own RPC encryption key.";
        taskmanager_rpc_encr_key: Secret = "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz",
            "Key encrypting API to taskmanager RPC messages. Must be the same on every API and \
             taskmanager host; change it from the default.";
        inst_rpc_key_encr_key: Secret = "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP",
            "Key encrypting the per-instance RPC keys stored in the database (needed by API, \
             taskmanager and conductor). Change it before the first instance is created: \
             changing it later makes existing instance keys unreadable.";
        instance_rpc_encr_key: Option<Secret> = UNSET,
            "The instance's own RPC key, as seen inside the guest (written to guest_info.conf \
             by the taskmanager). Leave unset on controllers.";
        management_networks: Vec<String> = "",
            "Neutron network IDs for the management interface of instances. Only the last \
             entry is used; it is attached after the user's networks.",
            deprecated_name("default_neutron_networks");
        management_security_groups: Vec<String> = "",
            "Security group IDs applied to the management port (default: the instance's own \
             security group).";
        cinder_volume_type: Option<String> = UNSET,
            "Cinder volume type used when a request does not give one.";
        nova_keypair: Option<String> = UNSET,
            "Nova keypair injected into instances, for operator SSH access.";
        default_datastore: Option<String> = UNSET,
            "Datastore (name or ID) used when a create request names none; when unset the \
             datastore is mandatory.";
        default_locality: Option<String> = UNSET,
            "Server group policy (affinity, anti-affinity...) used when a create request \
             gives no locality; unset means none.";
        max_accepted_volume_size: i64 = "10",
            "Largest volume size (GB) accepted in create and resize requests.";
        max_instances_per_tenant: i64 = "10",
            "Default quota of instances per project (-1 for unlimited).",
            deprecated_name("max_instances_per_user");
        max_backups_per_tenant: i64 = "50",
            "Default quota of backups per project (-1 for unlimited).",
            deprecated_name("max_backups_per_user");
        max_ram_per_tenant: i64 = "-1",
            "Default quota of RAM (MB) per project (-1 for unlimited).";
        max_volumes_per_tenant: i64 = "40",
            "Default quota of volume space (GB) per project (-1 for unlimited).",
            deprecated_name("max_volumes_per_user");
        quota_driver: String = "trove.quota.quota.DbQuotaDriver",
            "Quota driver class.";
        transport_url: Secret = "rabbit://",
            "Messaging transport URL, e.g. rabbit://user:pass@10.0.0.1:5672/.";
        control_exchange: String = "openstack",
            "Exchange that RPC topics are scoped to (deployments normally set 'trove'). An \
             exchange name in transport_url takes precedence.";
        rpc_response_timeout: i64 = "60",
            "Seconds to wait for an RPC reply when a call gives no timeout (Trove always gives \
             one).";
        reboot_time_out: i64 = "120",
            "Seconds to wait for a rebooted server to become ACTIVE.";
        usage_timeout: i64 = "1800",
            "Seconds to wait for the guest of a new instance to report it is ready.";
        restore_usage_timeout: i64 = "3600",
            "Seconds to wait for the guest of a restored instance or a replica to report ready.";
        agent_call_low_timeout: i64 = "15",
            "Seconds to wait for quick guest agent calls.";
        agent_call_high_timeout: i64 = "180",
            "Seconds to wait for slow guest agent calls (restart, user listing, configuration, \
             replication).";
        agent_replication_snapshot_timeout: i64 = "1800",
            "Seconds to wait for a replication snapshot from the guest agent.";
        agent_heartbeat_expiry: i64 = "90",
            "Seconds after which a guest heartbeat is stale.";
        agent_heartbeat_time: i64 = "10",
            "Legacy guest heartbeat interval (seconds).";
        usage_sleep_time: i64 = "5",
            "Seconds between polls while waiting for a guest to become ready.";
        update_status_on_fail: bool = "true",
            "Put an instance in ERROR when its guest does not become ready in time.";
        database_service_uid: String = "1001",
            "UID (and default GID) of the OS user that owns the database files and container.";

        // --- API and services.
        auth_strategy: String = "noauth",
            "How API requests are authenticated: 'keystone' validates tokens with Keystone, \
             'noauth' trusts the project in the URL (local use only). Trove itself always uses \
             keystone through its paste pipeline; Trove-rs defaults to noauth for the embedded \
             all-in-one mode.",
            choices(&["keystone", "noauth"]);
        bind_host: IpAddr = "0.0.0.0",
            "IP address the API listens on.";
        bind_port: u16 = "8779",
            "Port the API listens on.";
        api_paste_config: String = "api-paste.ini",
            "Paste deployment file of the API, looked up next to the config file.";
        trove_api_workers: i64 = CPUS,
            "Number of API worker processes (default: the number of CPUs).",
            min(1), sample("<number of CPUs>");
        trove_conductor_workers: i64 = CPUS,
            "Number of conductor worker processes (default: the number of CPUs).",
            min(1), sample("<number of CPUs>");
        public_endpoint: Option<String> = UNSET,
            "Base URL used in version links instead of the request's host (when behind a \
             proxy).";
        host: IpAddr = "0.0.0.0",
            "Name of this node for RPC servers (`<topic>.<host>` queues) and notifications.";
        taskmanager_queue: String = "taskmanager",
            "RPC topic of the taskmanager.";
        conductor_queue: String = "trove-conductor",
            "RPC topic of the conductor.";
        taskmanager_manager: String = "trove.taskmanager.manager.Manager",
            "Taskmanager manager class.";
        conductor_manager: String = "trove.conductor.manager.Manager",
            "Conductor manager class.";
        report_interval: i64 = "30",
            "Interval (seconds) of the periodic task loop.";
        region: String = "LOCAL_DEV",
            "Region name reported in usage notifications.";
        http_get_rate: i64 = "200",
            "Maximum GET requests per minute per project.";
        http_post_rate: i64 = "200",
            "Maximum POST requests per minute per project.";
        http_put_rate: i64 = "200",
            "Maximum PUT requests per minute per project.";
        http_delete_rate: i64 = "200",
            "Maximum DELETE requests per minute per project.";
        http_mgmt_post_rate: i64 = "200",
            "Maximum management API POST requests per minute.";
        max_header_line: i64 = "16384",
            "Maximum size (bytes) of an HTTP request header line.";
        users_page_size: i64 = "20",
            "Default page size of user listings.";
        databases_page_size: i64 = "20",
            "Default page size of database listings.";
        instances_page_size: i64 = "20",
            "Default page size of instance listings.";
        clusters_page_size: i64 = "20",
            "Default page size of cluster listings.";
        backups_page_size: i64 = "20",
            "Default page size of backup listings.";
        configurations_page_size: i64 = "20",
            "Default page size of configuration group listings.";
        modules_page_size: i64 = "20",
            "Default page size of module listings.";
        hostname_require_valid_ip: bool = "true",
            "Require the host of a database user to be an IP address or wildcard.";
        root_grant: Vec<String> = "ALL",
            "Privileges granted to root when it is enabled.";
        root_grant_option: bool = "true",
            "Grant root its privileges WITH GRANT OPTION.";
        expected_filetype_suffixes: Vec<String> = "json",
            "File name suffixes accepted for uploaded files.";
        sql_query_logging: bool = "false",
            "Log every SQL statement the guest agent runs.";
        exists_notification_transformer: Option<String> = UNSET,
            "Transformer class for periodic 'exists' notifications; unset disables them.";
        exists_notification_interval: i64 = "3600",
            "Seconds between 'exists' notifications.";
        quota_notification_interval: Option<i64> = UNSET,
            "Seconds between quota usage notifications; unset disables them.";
        notification_service_id: BTreeMap<String, String> =
            "cassandra:459a230d-4e97-4344-9067-2a54a310b0ed,\
             couchbase:fa62fe68-74d9-4779-a24e-36f19602c415,\
             couchdb:f0a9ab7b-66f7-4352-93d7-071521d44c7c,\
             db2:e040cd37-263d-4869-aaa6-c62aa97523b5,\
             mariadb:7a4f82cc-10d2-4bc6-aadc-d9aacc2a3cb5,\
             mongodb:c8c907af-7375-456f-b929-b637ff9209ee,\
             mysql:2f3ff068-2bfb-4f70-9a9d-a6bb65bc084b,\
             percona:fd1723f5-68d2-409c-994f-a4a197892a17,\
             postgresql:ac277e0d-4f21-40aa-b347-1ea31e571720,\
             pxc:75a628c3-f81b-4ffb-b10a-4087c26bc854,\
             redis:b216ffc5-1947-456c-a4cf-70f94c05f7d0,\
             vertica:a8d805ae-a3b2-c4fd-gb23-b62cee5201ae",
            "Service ID per datastore manager, sent as 'service_id' in usage notifications.";
        admin_roles: Vec<String> = "",
            "Roles treated as administrators (use the 'context_is_admin' policy instead).",
            removal();

        // --- Logging (oslo.log).
        debug: bool = "false",
            "Log at DEBUG level instead of INFO.";
        log_file: Option<String> = UNSET,
            "Log file name; unset logs to standard error.";
        log_dir: Option<String> = UNSET,
            "Directory of log_file when it is a relative path.";

        // --- Guest interaction.
        state_change_wait_time: i64 = "180",
            "Guest: seconds to wait for the database to start, stop or reach a status.";
        state_change_poll_time: i64 = "3",
            "Guest: seconds between database status polls.";
        state_healthy_counts: i64 = "5",
            "Guest: consecutive healthy checks needed before the database counts as running.";
        command_process_timeout: i64 = "30",
            "Guest: timeout (seconds) of subprocesses.";
        guest_id: Option<String> = UNSET,
            "Guest: ID of the instance (set in guest_info.conf).";
        datastore_manager: Option<String> = UNSET,
            "Guest: datastore manager name (set in guest_info.conf).";
        datastore_version: Option<String> = UNSET,
            "Guest: datastore version number (set in guest_info.conf).";
        tenant_id: Option<String> = UNSET,
            "Guest: project of the instance (set in guest_info.conf).";
        replication_strategy: Option<String> = UNSET,
            "Guest: replication strategy class of the instance (set in guest_info.conf).";
        ssl_mode: Option<String> = UNSET,
            "Guest: TLS mode of the instance (set in guest_info.conf).";
        network_isolation: Option<bool> = UNSET,
            "Guest: copy of `[network] network_isolation` (set in guest_info.conf).";
        datastore_registry_ext: BTreeMap<String, String> = "",
            "Extra or replacement guest managers, as manager:class pairs.";
        guest_config: String = "/etc/trove/trove-guestagent.conf",
            "Controller-side guest agent config file copied into every instance.";
        guest_info: String = "guest_info.conf",
            "Name (or absolute path) of the generated per-instance guest info file.";
        injected_config_location: String = "/etc/trove/conf.d",
            "Guest directory receiving the injected config files.";
        injected_config_owner: String = "ubuntu",
            "Owner of the injected config files.";
        injected_config_group: String = "root",
            "Group of the injected config files.";
        cloudinit_location: String = "/etc/trove/cloudinit",
            "Directory of `<manager>.cloudinit` user-data snippets.";
        controller_address: Option<String> = UNSET,
            "Controller address written into the guest (development setups).";
        use_nova_server_config_drive: bool = "false",
            "Pass injected files through a config drive.";
        template_path: String = "/etc/trove/templates/",
            "Directory overriding the built-in datastore config templates.";
        docker_bridge_network_ip: Option<String> = UNSET,
            "Guest: 'bip' of the Docker bridge network.";
        docker_insecure_registries: Vec<String> = "",
            "Guest: Docker registries allowed without TLS.";

        // --- Compute, network and volume services.
        nova_client_version: String = "2.57",
            "Nova API microversion (2.12 or later).";
        nova_compute_url: Option<Url> = UNSET,
            "Nova endpoint, instead of the one from the service catalog.";
        cinder_url: Option<Url> = UNSET,
            "Cinder endpoint, instead of the one from the service catalog.";
        neutron_url: Option<Url> = UNSET,
            "Neutron endpoint, instead of the one from the service catalog.";
        swift_url: Option<Url> = UNSET,
            "Swift endpoint, instead of the one from the service catalog.";
        glance_url: Option<Url> = UNSET,
            "Glance endpoint, instead of the one from the service catalog.";
        trove_url: Option<Url> = UNSET,
            "Trove endpoint, instead of the one from the service catalog.";
        barbican_url: Option<Url> = UNSET,
            "Barbican endpoint, instead of the one from the service catalog.";
        nova_compute_service_type: String = "compute",
            "Service type of Nova in the catalog.";
        cinder_service_type: String = "volumev3",
            "Service type of Cinder in the catalog.";
        neutron_service_type: String = "network",
            "Service type of Neutron in the catalog.";
        swift_service_type: String = "object-store",
            "Service type of Swift in the catalog.";
        glance_service_type: String = "image",
            "Service type of Glance in the catalog.";
        trove_service_type: String = "database",
            "Service type of Trove in the catalog.";
        barbican_service_type: String = "key-manager",
            "Service type of Barbican in the catalog.";
        nova_compute_endpoint_type: String = "publicURL",
            "Endpoint interface used for Nova.";
        cinder_endpoint_type: String = "publicURL",
            "Endpoint interface used for Cinder.";
        neutron_endpoint_type: String = "publicURL",
            "Endpoint interface used for Neutron.";
        swift_endpoint_type: String = "publicURL",
            "Endpoint interface used for Swift.";
        glance_endpoint_type: String = "publicURL",
            "Endpoint interface used for Glance.";
        trove_endpoint_type: String = "publicURL",
            "Endpoint interface used for Trove.";
        barbican_endpoint_type: String = "publicURL",
            "Endpoint interface used for Barbican.";
        nova_api_insecure: bool = "false",
            "Skip TLS certificate verification for Nova.";
        neutron_api_insecure: bool = "false",
            "Skip TLS certificate verification for Neutron.";
        cinder_api_insecure: bool = "false",
            "Skip TLS certificate verification for Cinder.";
        swift_api_insecure: bool = "false",
            "Skip TLS certificate verification for Swift.";
        cinder_client_version: String = "3",
            "Cinder API version.";
        glance_client_version: String = "2",
            "Glance API version.";
        trove_security_groups_support: bool = "true",
            "Create a security group for each instance.";
        trove_security_group_name_prefix: String = "trove_sg",
            "Name prefix of the security groups Trove creates.";
        trove_security_group_rule_cidr: String = "0.0.0.0/0",
            "Default source CIDR of security group rules.";
        reserved_network_cidrs: Vec<String> = "",
            "CIDRs user networks may not overlap (besides the management subnets).";
        ip_regex: Option<String> = UNSET,
            "Only addresses matching this regular expression are shown to users.";
        black_list_regex: Option<String> = UNSET,
            "Addresses matching this regular expression are hidden from users.";
        network_driver: String = "trove.network.neutron.NeutronDriver",
            "Network driver class.";
        trove_volume_support: bool = "false",
            "Whether flavors are shown as used with volumes (provisioning uses the \
             datastore's volume_support).";
        volume_rootdisk_support: bool = "false",
            "Boot instances from a Cinder volume.";
        volume_rootdisk_size: i64 = "10",
            "Size (GB) of the root volume when booting from a volume.";
        block_device_mapping: String = "vdb",
            "Device name requested for the data volume.";
        device_path: String = "/dev/vdb",
            "Default device path of the data volume (the datastore's value is used).";
        volume_fstype: String = "ext4",
            "File system created on data volumes.",
            choices(&["ext3", "ext4", "xfs"]);
        format_options: String = "-m 5",
            "Options passed to mkfs.";
        volume_format_timeout: i64 = "120",
            "Seconds to wait for a volume to be formatted.";
        mount_options: String = "defaults,noatime",
            "Options used when mounting data volumes.";
        num_tries: i64 = "3",
            "Number of checks that a volume device exists.";
        online_volume_resize: bool = "true",
            "Extend volumes without detaching them.";
        enable_volume_az: bool = "false",
            "Create volumes in the availability zone of the instance.";
        volume_time_out: i64 = "60",
            "Seconds to wait for Cinder volume operations.";
        server_delete_time_out: i64 = "60",
            "Seconds to wait for a server to be deleted.";
        resize_time_out: i64 = "900",
            "Seconds to wait for a server resize.";
        revert_time_out: i64 = "600",
            "Seconds to wait for a resize to be reverted.";
        dns_time_out: i64 = "120",
            "Seconds to wait for DNS entries.";
        cluster_delete_time_out: i64 = "180",
            "Seconds to wait for a cluster to be deleted.";
        cluster_usage_timeout: i64 = "36000",
            "Seconds to wait for a cluster to become ready.";
        trove_dns_support: bool = "false",
            "Create DNS entries for instances (Designate).";
        dns_driver: String = "trove.dns.driver.DnsDriver",
            "DNS driver class.";
        dns_instance_entry_factory: String = "trove.dns.driver.DnsInstanceEntryFactory",
            "Factory class of DNS entries.";
        dns_hostname: String = "",
            "Host name of the DNS zone.";
        dns_account_id: String = "",
            "Account ID of the DNS service.";
        dns_endpoint_url: String = "0.0.0.0",
            "Endpoint of the DNS service.";
        dns_service_type: String = "",
            "Service type of the DNS service.";
        dns_region: String = "",
            "Region of the DNS service.";
        dns_auth_url: String = "",
            "Identity endpoint for the DNS service.";
        dns_user_domain_id: String = "",
            "User domain ID for the DNS service.";
        dns_project_domain_id: String = "",
            "Project domain ID for the DNS service.";
        dns_domain_name: String = "",
            "DNS domain name.";
        dns_username: Secret = "",
            "User name for the DNS service.";
        dns_passkey: Secret = "",
            "Password for the DNS service.";
        dns_management_base_url: String = "",
            "Management URL of the DNS service.";
        dns_ttl: i64 = "300",
            "TTL (seconds) of DNS entries.";
        dns_domain_id: String = "",
            "ID of the DNS domain.";

        // --- Backups, modules, guest logs.
        storage_strategy: String = "swift",
            "Default backup storage driver ('swift' or 'cinder'); set the same in the guest \
             config.";
        replica_snapshot_driver: Option<String> = UNSET,
            "Driver of replication snapshots (default: storage_strategy).",
            choices(&["cinder", "swift"]);
        backup_swift_container: String = "database_backups",
            "Default Swift container of backups.";
        verify_swift_checksum_on_restore: bool = "true",
            "Compare the Swift checksum of a backup with the stored one before restoring.";
        verify_replica_volume_size: bool = "true",
            "Check that a replica's volume is large enough for the source's data.";
        running_backups_expires: i64 = "3",
            "Days after which a backup still 'running' may be deleted.";
        backup_aes_cbc_key: Secret = "",
            "Key decrypting old (pre-Victoria) encrypted backups.",
            removal();
        backup_encryption_key: Secret = "",
            "Base64 of a 32-byte key: the guest agent encrypts the backups it takes with \
             AES-256-GCM before they leave the instance, and decrypts them on restore (a \
             changed object is refused). Empty: backups are not encrypted. Trove-rs only.";
        backup_use_gzip_compression: bool = "true",
            "Ignored.",
            removal();
        backup_use_openssl_encryption: bool = "true",
            "Ignored.",
            removal();
        backup_runner: String = "trove.guestagent.backup.backup_types.InnoBackupEx",
            "Ignored.",
            removal();
        backup_runner_options: BTreeMap<String, String> = "",
            "Ignored.",
            removal();
        storage_namespace: String = "trove.common.strategies.storage.swift",
            "Ignored.",
            removal();
        backup_chunk_size: i64 = "65536",
            "Chunk size (bytes) of backup streams (unused).";
        backup_segment_max_size: i64 = "2147483648",
            "Maximum size (bytes) of a backup segment object; larger backups are stored as \
             a Static Large Object of such segments.";
        module_aes_cbc_key: Secret = "module_aes_cbc_key",
            "Key encrypting module contents at rest.";
        module_types: Vec<String> = "ping,new_relic_license",
            "Module types that may be created.";
        module_reapply_max_batch_size: i64 = "50",
            "Instances updated per batch when a module is re-applied.";
        module_reapply_min_batch_delay: i64 = "2",
            "Minimum seconds between module re-apply batches.";
        guest_log_container_name: String = "database_logs",
            "Swift container of published guest logs.";
        guest_log_limit: i64 = "1000000",
            "Maximum bytes per published guest log object.";
        guest_log_expiry: i64 = "2592000",
            "Seconds before published guest log objects expire.";
    }
}

opt_group! {
    /// `[database]`: the control database (oslo.db options).
    pub struct DatabaseOpts("database") {
        connection: Secret = "sqlite://",
            "Database URL, e.g. mysql+pymysql://trove:secret@127.0.0.1/trove?charset=utf8.",
            deprecated("DEFAULT", "sql_connection");
        max_pool_size: i64 = "5",
            "Maximum number of connections kept open in the pool.";
        max_overflow: i64 = "50",
            "Connections allowed beyond max_pool_size.";
        pool_timeout: Option<i64> = UNSET,
            "Seconds to wait for a free pool connection.";
        connection_recycle_time: i64 = "3600",
            "Connections older than this (seconds) are replaced.",
            deprecated_name("idle_timeout");
        max_retries: i64 = "10",
            "Connection attempts at start-up (-1 for unlimited).",
            min(-1);
        retry_interval: i64 = "10",
            "Seconds between connection attempts.";
    }
}

opt_group! {
    /// `[keystone_authtoken]`: token validation by the API (keystonemiddleware options).
    pub struct KeystoneAuthtokenOpts("keystone_authtoken") {
        www_authenticate_uri: Option<String> = UNSET,
            "Public identity endpoint returned to unauthenticated clients.",
            deprecated_name("auth_uri");
        auth_url: Option<String> = UNSET,
            "Identity endpoint used to validate tokens.";
        auth_type: Option<String> = UNSET,
            "Authentication plugin of the service user (normally 'password').",
            deprecated_name("auth_plugin");
        auth_section: Option<String> = UNSET,
            "Config group holding the authentication options.";
        username: Option<String> = UNSET,
            "Service user name.";
        password: Option<Secret> = UNSET,
            "Service user password.";
        user_id: Option<String> = UNSET,
            "Service user ID.";
        project_name: Option<String> = UNSET,
            "Project of the service user.";
        project_id: Option<String> = UNSET,
            "Project ID of the service user.";
        user_domain_name: Option<String> = UNSET,
            "Domain of the service user.";
        user_domain_id: Option<String> = UNSET,
            "Domain ID of the service user.";
        project_domain_name: Option<String> = UNSET,
            "Domain of the service user's project.";
        project_domain_id: Option<String> = UNSET,
            "Domain ID of the service user's project.";
        region_name: Option<String> = UNSET,
            "Region of the identity service.";
        interface: String = "internal",
            "Endpoint interface of the identity service.";
        memcached_servers: Vec<String> = "",
            "memcached servers (host:port) caching validated tokens; empty caches in process.",
            deprecated_name("memcache_servers");
        memcache_security_strategy: Option<String> = UNSET,
            "Protection of cached tokens.",
            choices(&["None", "MAC", "ENCRYPT"]);
        memcache_secret_key: Option<Secret> = UNSET,
            "Key for memcache_security_strategy.";
        token_cache_time: i64 = "300",
            "Seconds a validated token is cached (-1 disables caching).";
        service_token_roles: Vec<String> = "service",
            "Roles a service token must carry.";
        service_token_roles_required: bool = "false",
            "Reject service tokens lacking service_token_roles.";
        include_service_catalog: bool = "true",
            "Pass the user's service catalog to the API (Trove needs it).";
        delay_auth_decision: bool = "false",
            "Let requests with invalid tokens through, marked unauthenticated.";
        cafile: Option<String> = UNSET,
            "CA bundle for TLS connections to the identity service.";
        certfile: Option<String> = UNSET,
            "Client certificate for the identity service.";
        keyfile: Option<String> = UNSET,
            "Client key for the identity service.";
        insecure: bool = "false",
            "Skip TLS certificate verification.";
        http_connect_timeout: Option<i64> = UNSET,
            "Seconds to wait for the identity service.";
        http_request_max_retries: i64 = "3",
            "Retries of requests to the identity service.";
    }
}

opt_group! {
    /// `[service_credentials]`: the Trove service user used for Nova, Cinder, Neutron and
    /// Glance (resources live in its project).
    pub struct ServiceCredentialsOpts("service_credentials") {
        auth_url: String = "https://0.0.0.0/identity/v3",
            "Identity endpoint of the service user.",
            deprecated("DEFAULT", "trove_auth_url");
        username: String = "",
            "Service user name.",
            deprecated("DEFAULT", "nova_proxy_admin_user");
        password: Secret = "",
            "Service user password.",
            deprecated("DEFAULT", "nova_proxy_admin_pass");
        project_id: String = "",
            "Project ID of the service user.",
            deprecated("DEFAULT", "nova_proxy_admin_tenant_id");
        project_name: String = "",
            "Project of the service user.",
            deprecated("DEFAULT", "nova_proxy_admin_tenant_name");
        user_domain_name: String = "Default",
            "Domain of the service user.",
            deprecated("DEFAULT", "nova_proxy_admin_user_domain_name");
        project_domain_name: String = "Default",
            "Domain of the service project.",
            deprecated("DEFAULT", "nova_proxy_admin_project_domain_name");
        region_name: String = "RegionOne",
            "Region of the OpenStack services.",
            deprecated("DEFAULT", "os_region_name");
    }
}

opt_group! {
    /// `[network]`: networking of instances.
    pub struct NetworkOpts("network") {
        public_network_id: Option<String> = UNSET,
            "External network for floating IPs of public instances (default: the first \
             external network).";
        enable_access_check: bool = "true",
            "Require a router on the user's subnet.";
        network_isolation: bool = "true",
            "Hand the user's network interface to the database container.";
    }
}

opt_group! {
    /// `[guest_agent]`: container registry of the guest agent.
    pub struct GuestAgentOpts("guest_agent") {
        container_registry: Option<String> = UNSET,
            "Registry the database images are pulled from (default: Docker's).";
        container_registry_username: Option<String> = UNSET,
            "User name for the registry.";
        container_registry_password: Option<Secret> = UNSET,
            "Password for the registry.";
    }
}

opt_group! {
    /// `[upgrade_levels]`: RPC version caps during rolling upgrades.
    pub struct UpgradeLevelsOpts("upgrade_levels") {
        taskmanager: String = "latest",
            "Version cap (or release name) of taskmanager RPC.";
        guestagent: String = "latest",
            "Version cap (or release name) of guest agent RPC.";
        conductor: String = "latest",
            "Version cap (or release name) of conductor RPC.";
    }
}

opt_group! {
    /// `[instance_ports_cache]`: caching of instance ports (needs `[cache] enabled`).
    pub struct InstancePortsCacheOpts("instance_ports_cache") {
        expiration_time: i64 = "86400",
            "Seconds a cached port list is kept.";
        caching: bool = "true",
            "Cache instance ports.";
    }
}

opt_group! {
    /// `[cache]`: oslo.cache (only what Trove uses).
    pub struct CacheOpts("cache") {
        enabled: bool = "false",
            "Enable caching.";
        backend: String = "dogpile.cache.null",
            "Cache backend.";
        expiration_time: i64 = "600",
            "Default expiration (seconds) of cached values.";
        memcache_servers: Vec<String> = "localhost:11211",
            "memcached servers for memcache backends.";
    }
}

opt_group! {
    /// `[oslo_messaging_rabbit]`: RabbitMQ driver (oslo.messaging options).
    pub struct OsloMessagingRabbitOpts("oslo_messaging_rabbit") {
        amqp_durable_queues: bool = "false",
            "Declare durable queues.";
        amqp_auto_delete: bool = "false",
            "Declare auto-deleting queues and exchanges.";
        rabbit_ha_queues: bool = "false",
            "Declare mirrored (x-ha-policy all) queues.";
        rabbit_quorum_queue: bool = "false",
            "Declare quorum queues.";
        rabbit_transient_quorum_queue: bool = "false",
            "Declare transient (reply and fanout) queues as quorum queues.";
        rabbit_transient_queues_ttl: i64 = "1800",
            "Seconds an unused reply or fanout queue lives (x-expires).",
            min(1);
        rabbit_qos_prefetch_count: i64 = "0",
            "Unacknowledged messages a consumer may hold (0 for unlimited).";
        heartbeat_timeout_threshold: i64 = "60",
            "Seconds without heartbeat after which the connection is considered dead (0 \
             disables heartbeats).";
        heartbeat_rate: i64 = "3",
            "Heartbeat checks per heartbeat_timeout_threshold.";
        direct_mandatory_flag: bool = "true",
            "Publish replies with the mandatory flag.";
        kombu_missing_consumer_retry_timeout: i64 = "60",
            "Seconds to retry a reply whose queue is missing.";
        kombu_reconnect_delay: f64 = "1.0",
            "Seconds to wait before reconnecting after an AMQP consumer cancel.",
            min(0);
        kombu_failover_strategy: String = "round-robin",
            "How the next RabbitMQ host is chosen.",
            choices(&["round-robin", "shuffle"]);
        rabbit_login_method: String = "AMQPLAIN",
            "RabbitMQ login method.",
            choices(&["PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"]);
        rabbit_retry_interval: i64 = "1",
            "Seconds before retrying a connection.";
        rabbit_retry_backoff: i64 = "2",
            "Seconds added to the retry interval at each attempt.";
        rabbit_interval_max: i64 = "30",
            "Maximum retry interval (seconds).";
        rpc_conn_pool_size: i64 = "30",
            "Size of the RPC connection pool.",
            min(1), deprecated("DEFAULT", "rpc_conn_pool_size");
        ssl: bool = "false",
            "Connect over TLS.";
        ssl_ca_file: String = "",
            "CA bundle for TLS.";
        ssl_cert_file: String = "",
            "Client certificate for TLS.";
        ssl_key_file: String = "",
            "Client key for TLS.";
    }
}

opt_group! {
    /// `[oslo_messaging_notifications]`: notifications (oslo.messaging options).
    pub struct OsloMessagingNotificationsOpts("oslo_messaging_notifications") {
        driver: Vec<String> = "",
            "Notification drivers (messaging, messagingv2, log, noop); empty disables \
             notifications.";
        transport_url: Option<Secret> = UNSET,
            "Transport URL of notifications (default: `[DEFAULT] transport_url`).";
        topics: Vec<String> = "notifications",
            "Topics notifications are sent to.";
        retry: i64 = "-1",
            "Retries of an undeliverable notification (-1 for unlimited).";
    }
}

opt_group! {
    /// `[oslo_middleware]`: HTTP middleware of the API (oslo.middleware options).
    pub struct OsloMiddlewareOpts("oslo_middleware") {
        max_request_body_size: i64 = "114688",
            "Largest accepted request body (bytes).";
        enable_proxy_headers_parsing: bool = "false",
            "Trust X-Forwarded-* headers from a proxy in front of the API.";
    }
}

opt_group! {
    /// `[oslo_policy]`: API access policy (oslo.policy options).
    pub struct OsloPolicyOpts("oslo_policy") {
        policy_file: String = "policy.yaml",
            "File overriding the default policy rules.";
        enforce_scope: bool = "true",
            "Check the token scope against the scope of each rule.";
        enforce_new_defaults: bool = "true",
            "Use the new default rules, without the deprecated ones.";
    }
}

opt_group! {
    /// `[local_driver]` (Trove-rs only): the compute driver that runs every instance on the
    /// taskmanager's own host, as a guest-agent process with a loop-mounted volume and a
    /// loopback address of its own.
    pub struct LocalDriverOpts("local_driver") {
        backup_path: String = "/var/lib/trove/backups",
            "Directory that keeps backups when the request's service catalog has no object \
             store (the all-in-one mode, noauth): the guests stream their backups there.";
        compute_driver: String = "local",
            "Where trove-taskmanager builds instances: local (this host: guest-agent \
             processes, loop-mounted volumes, loopback addresses) or openstack (Nova, Cinder \
             and Neutron in the service project, from [service_credentials]).";
        state_path: String = "/var/lib/trove/local",
            "Directory of the instances' volumes, configuration, logs and address leases.";
        first_address: String = "127.1.0.1",
            "First loopback address handed to instances (never 127.0.0.1, which the host's \
             own database servers use); each instance gets the next free one.";
        guest_agent_program: String = "",
            "The trove-guestagent binary started for each instance (empty: the one installed \
             beside the taskmanager, else the one on PATH).";
        loop_volumes: String = "auto",
            "Volumes as ext4 images on loop devices, so each instance's storage fills up at \
             its size: auto (when running as root with /dev/loop-control), true, or false \
             (plain directories, size not enforced).";
    }
}

datastore_group! {
    /// A datastore group (`[mysql]`, `[mariadb]`, `[postgresql]`), looked up by the manager
    /// name of a datastore version. Options a datastore does not have are `None` there.
    pub struct DatastoreOpts("<datastore>") {
        docker_image: String = ["mysql", "mariadb", "postgres"],
            "Database container image (the tag is the datastore version).";
        backup_docker_image: Option<String> = [UNSET, UNSET, UNSET],
            "Backup container image; required for backups.",
            sample("your-registry/your-repo/db-backup-<datastore>");
        backup_strategy: Option<String> = ["innobackupex", "mariabackup", "pg_basebackup"],
            "Backup strategy; backups are allowed only when set.";
        replication_strategy: Option<String> =
            ["MysqlGTIDReplication", "MariaDBGTIDReplication", "PostgresqlReplicationStreaming"],
            "Replication strategy; replicas are allowed only when set.";
        replication_namespace: String = [
                "trove.guestagent.strategies.replication.mysql_gtid",
                "trove.guestagent.strategies.replication.mariadb_gtid",
                "trove.guestagent.strategies.replication.postgresql"
            ],
            "Module of the replication strategy.";
        tcp_ports: Vec<PortRange> = ["3306", "3306,4444,4567,4568", "5432"],
            "TCP ports (or ranges a-b) opened in the instance's security group.";
        udp_ports: Vec<PortRange> = ["", "", ""],
            "UDP ports (or ranges a-b) opened in the instance's security group.";
        volume_support: bool = ["true", "true", "true"],
            "Create a Cinder volume for the data.";
        device_path: String = ["/dev/vdb", "/dev/vdb", "/dev/vdb"],
            "Device path of the data volume.";
        mount_point: String = ["/var/lib/mysql", "/var/lib/mysql", "/var/lib/postgresql"],
            "Where the data volume is mounted; must match between controller and guest.";
        root_on_create: bool = ["false", "false", "false"],
            "Generate a root password when an instance is created.";
        usage_timeout: Option<i64> = ["400", "400", ABSENT],
            "Unused.";
        ignore_users: Vec<String> = ["os_admin,root", "os_admin,root", "os_admin,postgres"],
            "Users hidden from user listings.";
        ignore_dbs: Vec<String> = [
                "mysql,information_schema,performance_schema,sys",
                "mysql,information_schema,performance_schema",
                "os_admin,postgres"
            ],
            "Databases hidden from database listings.";
        guest_log_exposed_logs: Vec<String> = ["general,slow_query", "general,slow_query", "general"],
            "Database logs users may publish.";
        guest_log_long_query_time: i64 = ["1000", "1000", "0"],
            "Threshold (ms) of the slow query log.";
        default_password_length: i64 = ["36", "${mysql.default_password_length}", "36"],
            "Length of generated passwords.",
            min(1);
        root_controller: String = [
                "trove.extensions.common.service.DefaultRootController",
                "trove.extensions.common.service.DefaultRootController",
                "trove.extensions.common.service.DefaultRootController"
            ],
            "Root controller class of the API.";
        database_service_uname: String = ["database", "database", "database"],
            "OS user running the database in the guest.";
        database_service_uid: Option<String> = [UNSET, UNSET, UNSET],
            "UID of the database OS user (default: `[DEFAULT] database_service_uid`).";
        database_service_gid: Option<String> = [UNSET, UNSET, UNSET],
            "GID of the database OS user (default: the UID).";
        icmp: bool = ["false", "false", "false"],
            "Allow ICMP in the security group.",
            removal();
        postgresql_port: Option<u16> = [ABSENT, ABSENT, "5432"],
            "Port of the PostgreSQL server.";
        enable_clean_wal_archives: Option<bool> = [ABSENT, ABSENT, "true"],
            "Periodically remove archived WAL files no longer needed.";
        wal_archive_location: Option<String> = [ABSENT, ABSENT, "/mnt/wal_archive"],
            "Unused.",
            removal();
        cluster_support: Option<bool> = [ABSENT, "true", ABSENT],
            "Allow clusters (experimental).";
        min_cluster_member_count: Option<i64> = [ABSENT, "3", ABSENT],
            "Minimum number of cluster members.";
        api_strategy: Option<String> = [
                ABSENT,
                "trove.common.strategies.cluster.experimental.galera_common.api.GaleraCommonAPIStrategy",
                ABSENT
            ],
            "Cluster API strategy class.";
        taskmanager_strategy: Option<String> = [
                ABSENT,
                "trove.common.strategies.cluster.experimental.galera_common.taskmanager.GaleraCommonTaskManagerStrategy",
                ABSENT
            ],
            "Cluster taskmanager strategy class.";
        guestagent_strategy: Option<String> = [
                ABSENT,
                "trove.common.strategies.cluster.experimental.galera_common.guestagent.GaleraCommonGuestAgentStrategy",
                ABSENT
            ],
            "Cluster guest agent strategy class.";
    }
}

/// Variant of [`DatastoreOpts`] for `[mysql]`.
const MYSQL: usize = 0;
/// Variant of [`DatastoreOpts`] for `[mariadb]`.
const MARIADB: usize = 1;
/// Variant of [`DatastoreOpts`] for `[postgresql]`.
const POSTGRESQL: usize = 2;

macro_rules! config_groups {
    ( $( $field:ident : $ty:ident = $group:literal [$variant:expr] ; )* ) => {
        /// The whole configuration: one field per group, named as the group.
        ///
        /// `Config::default()` has every option at its default.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct Config {
            $(
                #[doc = concat!("`[", $group, "]`")]
                pub $field: $ty,
            )*
        }

        impl Config {
            /// Every group with its option table, in declaration order.
            pub(crate) fn schema() -> Vec<(&'static str, Vec<$crate::meta::OptMeta>)> {
                vec![ $( ($group, $ty::options($variant)), )* ]
            }

            /// Builds every group from resolved values.
            pub(crate) fn build(
                r: &$crate::load::Resolver<'_>,
            ) -> Result<Self, $crate::error::ConfigError> {
                Ok(Config { $( $field: $ty::build(r, $group)?, )* })
            }
        }
    };
}

config_groups! {
    default: DefaultOpts = "DEFAULT" [0];
    database: DatabaseOpts = "database" [0];
    keystone_authtoken: KeystoneAuthtokenOpts = "keystone_authtoken" [0];
    service_credentials: ServiceCredentialsOpts = "service_credentials" [0];
    network: NetworkOpts = "network" [0];
    guest_agent: GuestAgentOpts = "guest_agent" [0];
    upgrade_levels: UpgradeLevelsOpts = "upgrade_levels" [0];
    instance_ports_cache: InstancePortsCacheOpts = "instance_ports_cache" [0];
    cache: CacheOpts = "cache" [0];
    oslo_messaging_rabbit: OsloMessagingRabbitOpts = "oslo_messaging_rabbit" [0];
    oslo_messaging_notifications: OsloMessagingNotificationsOpts = "oslo_messaging_notifications" [0];
    oslo_middleware: OsloMiddlewareOpts = "oslo_middleware" [0];
    oslo_policy: OsloPolicyOpts = "oslo_policy" [0];
    local_driver: LocalDriverOpts = "local_driver" [0];
    mysql: DatastoreOpts = "mysql" [MYSQL];
    mariadb: DatastoreOpts = "mariadb" [MARIADB];
    postgresql: DatastoreOpts = "postgresql" [POSTGRESQL];
}

impl Config {
    /// The datastore group of a datastore version's manager (`mysql`, `mariadb`,
    /// `postgresql`), as Trove looks groups up by manager name; `None` for others.
    pub fn datastore(&self, manager: &str) -> Option<&DatastoreOpts> {
        match manager {
            "mysql" => Some(&self.mysql),
            "mariadb" => Some(&self.mariadb),
            "postgresql" => Some(&self.postgresql),
            _ => None,
        }
    }

    /// Manager names that have a datastore group.
    pub const DATASTORE_MANAGERS: &'static [&'static str] = &["mysql", "mariadb", "postgresql"];

    /// Builds the configuration from INI text, as if read from a file called `name`.
    pub fn from_ini_str(name: &str, text: &str) -> Result<crate::Loaded, crate::ConfigError> {
        crate::load::load_strs(&[(name, text)])
    }

    /// Builds the configuration from several INI texts `(name, text)`; later ones override
    /// earlier ones, as with repeated `--config-file`.
    pub fn from_ini_strs(sources: &[(&str, &str)]) -> Result<crate::Loaded, crate::ConfigError> {
        crate::load::load_strs(sources)
    }
}

impl Default for Config {
    fn default() -> Self {
        crate::load::load_strs(&[])
            .expect("built-in defaults are valid")
            .config
    }
}
