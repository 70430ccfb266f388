//! Nova servers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Map, Value};
use trove_compute::{
    Address, ComputeDriver, DriverError, FlavorSpec, GuestVolume, Result, Server, ServerRequest,
    ServerStatus,
};

use crate::{render_user_data, OpenStackDriver, OpenStackOptions};

/// Microversion of server reads: the last one that shows the flavor by id (2.47 embeds it),
/// and late enough for tags (2.26).
const READ_MICROVERSION: &str = "2.46";

/// Nova's server status as a [`ServerStatus`]. Statuses Trove has no name for are mapped to
/// the nearest one: HARD_REBOOT is a reboot, REVERT_RESIZE and MIGRATING a resize, stopped
/// kinds (PAUSED, SUSPENDED, SHELVED...) SHUTOFF, REBUILD and PASSWORD BUILD, and UNKNOWN (or
/// anything new) ERROR.
pub fn map_server_status(status: &str) -> ServerStatus {
    match status.to_ascii_uppercase().as_str() {
        "BUILD" | "REBUILD" | "PASSWORD" => ServerStatus::Build,
        "ACTIVE" => ServerStatus::Active,
        "SHUTOFF" | "STOPPED" | "PAUSED" | "SUSPENDED" | "SHELVED" | "SHELVED_OFFLOADED"
        | "RESCUE" => ServerStatus::Shutoff,
        "REBOOT" | "HARD_REBOOT" => ServerStatus::Reboot,
        "RESIZE" | "REVERT_RESIZE" | "MIGRATING" => ServerStatus::Resize,
        "VERIFY_RESIZE" => ServerStatus::VerifyResize,
        "DELETED" | "SOFT_DELETED" => ServerStatus::Deleted,
        _ => ServerStatus::Error,
    }
}

/// Addresses of a server's `addresses` map (`{network: [{addr, OS-EXT-IPS:type}]}`):
/// floating ones are `public`, the others `private`.
pub(crate) fn server_addresses(addresses: &Value) -> Vec<Address> {
    let mut out = Vec::new();
    if let Some(map) = addresses.as_object() {
        for (network, list) in map {
            for a in list.as_array().into_iter().flatten() {
                let Some(addr) = a.get("addr").and_then(Value::as_str) else {
                    continue;
                };
                let floating = a.get("OS-EXT-IPS:type").and_then(Value::as_str) == Some("floating");
                out.push(Address {
                    address: addr.to_owned(),
                    kind: if floating { "public" } else { "private" }.to_owned(),
                    network: network.clone(),
                });
            }
        }
    }
    out
}

/// Server tags of an instance (Trove's list).
pub(crate) fn server_tags(req: &ServerRequest) -> Vec<String> {
    let mut tags = vec![
        "trove_instance".to_owned(),
        format!("trove_{}", req.datastore_manager),
        format!("trove_project_id_{}", req.project_id),
    ];
    if let Some(user) = req.metadata.get("trove_user_id") {
        tags.push(format!("trove_user_id_{user}"));
    }
    tags.push(instance_tag(&req.instance_id));
    // Nova accepts at most 60 characters per tag and no commas or slashes.
    tags.retain(|t| t.len() <= 60 && !t.contains(',') && !t.contains('/'));
    tags
}

fn instance_tag(instance_id: &str) -> String {
    format!("trove_instance_id_{instance_id}")
}

impl OpenStackDriver {
    /// The server as [`Server`]; `None` for a DELETED one.
    fn to_server(&self, s: &Value) -> Result<Option<Server>> {
        let id = s
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| DriverError::Api("Nova answered a server without an id".into()))?;
        let status = map_server_status(s.get("status").and_then(Value::as_str).unwrap_or(""));
        if status == ServerStatus::Deleted {
            return Ok(None);
        }
        let flavor_id = s
            .pointer("/flavor/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let fault = s
            .pointer("/fault/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|_| status == ServerStatus::Error)
            .or_else(|| {
                (status == ServerStatus::Error).then(|| {
                    format!(
                        "server status {}",
                        s.get("status").and_then(Value::as_str).unwrap_or("?")
                    )
                })
            });
        let has_volume = s
            .get("os-extended-volumes:volumes_attached")
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
        let volume = if has_volume {
            let manager = s
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find_map(|t| {
                    let m = t.strip_prefix("trove_")?;
                    self.inner.opts.guest_volumes.get(m)
                });
            manager.map(|(device_path, mount_point)| GuestVolume {
                device_path: device_path.clone(),
                mount_point: mount_point.clone(),
            })
        } else {
            None
        };
        Ok(Some(Server {
            id: id.to_owned(),
            status,
            addresses: server_addresses(s.get("addresses").unwrap_or(&Value::Null)),
            flavor_id,
            volume,
            fault,
        }))
    }

    /// `POST /servers/<id>/action` with `body`.
    async fn server_action(&self, server_id: &str, what: &str, body: Value) -> Result<()> {
        self.nova(
            Method::POST,
            &["servers", server_id, "action"],
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.is_not_found() {
                DriverError::NotFound {
                    kind: "server",
                    id: server_id.to_owned(),
                }
            } else {
                e.into_driver(&format!("Nova {what} of server {server_id}"))
            }
        })
    }

    /// The operator's `<cloudinit_location>/<manager>.cloudinit`, if there is one.
    async fn cloudinit_snippet(&self, manager: &str) -> Result<Option<String>> {
        if self.inner.opts.cloudinit_location.is_empty() {
            return Ok(None);
        }
        let path = std::path::Path::new(&self.inner.opts.cloudinit_location)
            .join(format!("{manager}.cloudinit"));
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DriverError::host(format!("reading {}", path.display()), e)),
        }
    }
}

/// The `POST /servers` body for `req` at Nova microversion `nova_version`.
pub(crate) fn server_body(
    opts: &OpenStackOptions,
    nova_version: (u16, u16),
    req: &ServerRequest,
    user_data: &str,
) -> Result<Value> {
    let image = req
        .image_id
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            DriverError::Invalid(format!(
                "no Glance image for instance {} (the datastore version has no image)",
                req.instance_id
            ))
        })?;
    let mut server = Map::new();
    server.insert("name".into(), json!(req.name));
    server.insert("imageRef".into(), json!(image));
    server.insert("flavorRef".into(), json!(req.flavor.id));
    let networks = if req.ports.is_empty() {
        json!("none")
    } else {
        Value::Array(req.ports.iter().map(|p| json!({"port": p.id})).collect())
    };
    server.insert("networks".into(), networks);
    if let Some(v) = &req.volume {
        // With BDMv2 the image is a mapping too: Nova wants the boot disk (the image,
        // boot_index 0) in the list beside imageRef, or it answers "Boot sequence ... is not
        // valid"; the data volume does not boot.
        server.insert(
            "block_device_mapping_v2".into(),
            json!([{
                "uuid": image,
                "source_type": "image",
                "destination_type": "local",
                "boot_index": 0,
                "delete_on_termination": true,
            }, {
                "uuid": v.id,
                "source_type": "volume",
                "destination_type": "volume",
                "boot_index": -1,
                "device_name": opts.block_device_name,
                "volume_size": v.size_gb,
                "delete_on_termination": true,
            }]),
        );
    }
    server.insert("user_data".into(), json!(B64.encode(user_data)));
    server.insert("config_drive".into(), json!(opts.config_drive));
    if let Some(k) = &opts.keypair {
        server.insert("key_name".into(), json!(k));
    }
    if let Some(az) = req.availability_zone.as_deref().filter(|a| !a.is_empty()) {
        server.insert("availability_zone".into(), json!(az));
    }
    let mut metadata: BTreeMap<String, String> = req.metadata.clone();
    metadata.insert("trove_project_id".into(), req.project_id.clone());
    metadata.insert("trove_instance_id".into(), req.instance_id.clone());
    server.insert("metadata".into(), json!(metadata));
    if nova_version >= (2, 52) {
        server.insert("tags".into(), json!(server_tags(req)));
    }
    Ok(json!({ "server": server }))
}

/// A Nova flavor (`GET /flavors/detail` entry) as a [`FlavorSpec`].
pub(crate) fn flavor_spec(f: &Value) -> Option<FlavorSpec> {
    let int = |k: &str| f.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(FlavorSpec {
        id: f.get("id").and_then(Value::as_str)?.to_owned(),
        name: f
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        ram_mb: int("ram"),
        vcpus: int("vcpus"),
        disk_gb: int("disk"),
        ephemeral_gb: f
            .get("OS-FLV-EXT-DATA:ephemeral")
            .or_else(|| f.get("ephemeral"))
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
}

impl OpenStackDriver {
    /// The flavors Nova offers the service project (public ones and those shared with it),
    /// the catalog tenants choose from when instances run on Nova.
    pub async fn flavors(&self) -> Result<Vec<FlavorSpec>> {
        let v = self
            .nova(Method::GET, &["flavors", "detail"], &[], None)
            .await
            .map_err(|e| e.into_driver("listing Nova flavors"))?;
        Ok(v.get("flavors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(flavor_spec)
            .collect())
    }

    /// Nova's flavor `id`; `None` when Nova has none of that id.
    pub async fn flavor(&self, id: &str) -> Result<Option<FlavorSpec>> {
        match self.nova(Method::GET, &["flavors", id], &[], None).await {
            Ok(v) => Ok(v.get("flavor").and_then(flavor_spec)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_driver(&format!("Nova show of flavor {id}"))),
        }
    }
}

impl OpenStackDriver {
    async fn list_servers(&self, query: &[(&str, String)]) -> Result<Vec<Value>> {
        let v = self
            .call(
                crate::Svc::Compute,
                Method::GET,
                &["servers", "detail"],
                query,
                None,
                Some(READ_MICROVERSION),
            )
            .await
            .map_err(|e| e.into_driver("listing Nova servers"))?;
        Ok(v.get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl ComputeDriver for OpenStackDriver {
    async fn resolve_image(
        &self,
        image_id: Option<&str>,
        image_tags: &[String],
    ) -> Result<Option<String>> {
        self.image_for_version(image_id, image_tags).await.map(Some)
    }

    async fn create_server(&self, req: &ServerRequest) -> Result<Server> {
        let snippet = self.cloudinit_snippet(&req.datastore_manager).await?;
        let user_data = render_user_data(
            &req.files,
            &self.inner.opts.injected_files_owner,
            snippet.as_deref(),
        )?;
        let body = server_body(&self.inner.opts, self.inner.nova_version, req, &user_data)?;
        let made = self
            .nova(Method::POST, &["servers"], &[], Some(&body))
            .await
            .map_err(|e| e.into_driver(&format!("Nova create of server {:?}", req.name)))?;
        let id = made
            .pointer("/server/id")
            .and_then(Value::as_str)
            .ok_or_else(|| DriverError::Api("Nova's create answer has no server id".into()))?
            .to_owned();
        tracing::info!(instance = %req.instance_id, server = %id, "Nova server requested");
        Ok(Server {
            id,
            status: ServerStatus::Build,
            addresses: Vec::new(),
            flavor_id: req.flavor.id.clone(),
            volume: None,
            fault: None,
        })
    }

    async fn get_server(&self, server_id: &str) -> Result<Option<Server>> {
        match self
            .call(
                crate::Svc::Compute,
                Method::GET,
                &["servers", server_id],
                &[],
                None,
                Some(READ_MICROVERSION),
            )
            .await
        {
            Ok(v) => match v.get("server") {
                Some(s) => self.to_server(s),
                None => Err(DriverError::Api(format!(
                    "Nova's answer for server {server_id} has no server"
                ))),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_driver(&format!("Nova show of server {server_id}"))),
        }
    }

    async fn delete_server(&self, server_id: &str) -> Result<()> {
        match self
            .nova(Method::DELETE, &["servers", server_id], &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => {
                // A server already DELETED (before the 404) counts as gone.
                if let Ok(None) = self.get_server(server_id).await {
                    return Ok(());
                }
                Err(e.into_driver(&format!("Nova delete of server {server_id}")))
            }
        }
    }

    async fn find_server(&self, instance_id: &str) -> Result<Option<Server>> {
        let mut found = self
            .list_servers(&[("tags", instance_tag(instance_id))])
            .await?;
        if found.is_empty() {
            // Servers made without tags: match the metadata.
            found = self
                .list_servers(&[])
                .await?
                .into_iter()
                .filter(|s| {
                    s.pointer("/metadata/trove_instance_id")
                        .and_then(Value::as_str)
                        == Some(instance_id)
                })
                .collect();
        }
        for s in &found {
            if let Some(server) = self.to_server(s)? {
                return Ok(Some(server));
            }
        }
        Ok(None)
    }

    async fn reboot_server(&self, server_id: &str) -> Result<()> {
        self.server_action(server_id, "reboot", json!({"reboot": {"type": "SOFT"}}))
            .await
    }

    async fn resize_server(&self, server_id: &str, flavor: &FlavorSpec) -> Result<()> {
        self.server_action(
            server_id,
            "resize",
            json!({"resize": {"flavorRef": flavor.id}}),
        )
        .await
    }

    async fn confirm_resize(&self, server_id: &str) -> Result<()> {
        self.server_action(server_id, "confirmResize", json!({"confirmResize": null}))
            .await
    }

    async fn revert_resize(&self, server_id: &str) -> Result<()> {
        self.server_action(server_id, "revertResize", json!({"revertResize": null}))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_compute::InjectedFile;

    #[test]
    fn nova_statuses_map() {
        use ServerStatus::*;
        for (nova, ours) in [
            ("BUILD", Build),
            ("ACTIVE", Active),
            ("SHUTOFF", Shutoff),
            ("REBOOT", Reboot),
            ("HARD_REBOOT", Reboot),
            ("RESIZE", Resize),
            ("REVERT_RESIZE", Resize),
            ("VERIFY_RESIZE", VerifyResize),
            ("ERROR", Error),
            ("UNKNOWN", Error),
            ("DELETED", Deleted),
            ("SOFT_DELETED", Deleted),
            ("SUSPENDED", Shutoff),
            ("REBUILD", Build),
            ("something-new", Error),
        ] {
            assert_eq!(map_server_status(nova), ours, "{nova}");
        }
    }

    #[test]
    fn addresses_are_private_or_public() {
        let a = server_addresses(&json!({
            "mgmt": [{"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"}],
            "user": [
                {"addr": "192.168.1.9", "version": 4},
                {"addr": "172.24.4.3", "version": 4, "OS-EXT-IPS:type": "floating"}
            ]
        }));
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].network, "mgmt");
        assert_eq!(a[0].kind, "private");
        assert_eq!(a[1].kind, "private");
        assert_eq!(a[2].address, "172.24.4.3");
        assert_eq!(a[2].kind, "public");
        assert!(server_addresses(&Value::Null).is_empty());
    }

    #[test]
    fn tags_follow_trove() {
        let mut req = request();
        req.metadata.insert("trove_user_id".into(), "u1".into());
        assert_eq!(
            server_tags(&req),
            vec![
                "trove_instance",
                "trove_mariadb",
                "trove_project_id_p1",
                "trove_user_id_u1",
                "trove_instance_id_i1",
            ]
        );
    }

    fn request() -> ServerRequest {
        ServerRequest {
            instance_id: "i1".into(),
            project_id: "p1".into(),
            name: "db1".into(),
            datastore_manager: "mariadb".into(),
            image_id: Some("img".into()),
            flavor: FlavorSpec {
                id: "7".into(),
                name: "m1.tiny".into(),
                ram_mb: 512,
                vcpus: 1,
                disk_gb: 1,
                ephemeral_gb: 0,
            },
            ports: Vec::new(),
            volume: None,
            files: vec![InjectedFile {
                path: "/etc/trove/conf.d/guest_info.conf".into(),
                content: "[DEFAULT]\n".into(),
            }],
            availability_zone: None,
            metadata: BTreeMap::new(),
        }
    }
}
