//! Neutron ports and security groups.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use trove_compute::{
    resource_name, Address, DriverError, NetworkDriver, NetworkRequest, Port, Result,
};

use crate::{OpenStackDriver, Svc};

/// The CIDRs security group rules admit: `access.allowed_cidrs`, else the default.
pub(crate) fn rule_cidrs(access: Option<&Value>, default_cidr: &str) -> Vec<String> {
    let given: Vec<String> = access
        .and_then(|a| a.get("allowed_cidrs"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if given.is_empty() {
        vec![default_cidr.to_owned()]
    } else {
        given
    }
}

/// The ingress rules of an instance's security group: every port for every CIDR.
pub(crate) fn rule_bodies(
    group_id: &str,
    tcp: &[u16],
    udp: &[u16],
    cidrs: &[String],
) -> Vec<Value> {
    let mut out = Vec::new();
    for (protocol, ports) in [("tcp", tcp), ("udp", udp)] {
        for port in ports {
            for cidr in cidrs {
                let ethertype = if cidr.contains(':') { "IPv6" } else { "IPv4" };
                out.push(json!({"security_group_rule": {
                    "security_group_id": group_id,
                    "direction": "ingress",
                    "ethertype": ethertype,
                    "protocol": protocol,
                    "port_range_min": port,
                    "port_range_max": port,
                    "remote_ip_prefix": cidr,
                }}));
            }
        }
    }
    out
}

fn port_of(p: &Value) -> Result<Port> {
    let id = p
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| DriverError::Api("Neutron answered a port without an id".into()))?;
    let network = p
        .get("network_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let addresses = p
        .get("fixed_ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("ip_address").and_then(Value::as_str))
        .map(|a| Address {
            address: a.to_owned(),
            kind: "private".into(),
            network: network.to_owned(),
        })
        .collect();
    Ok(Port {
        id: id.to_owned(),
        addresses,
    })
}

impl OpenStackDriver {
    async fn neutron(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> std::result::Result<Value, crate::CallError> {
        // osauth's version discovery already points at `.../v2.0`.
        self.call(Svc::Network, method, path, query, body, None)
            .await
    }

    /// Ids of the `collection` (`ports`, `security-groups`) entries named `name`.
    async fn ids_named(&self, collection: &str, name: &str) -> Result<Vec<String>> {
        let v = self
            .neutron(
                Method::GET,
                &[collection],
                &[("name", name.to_owned())],
                None,
            )
            .await
            .map_err(|e| e.into_driver(&format!("listing Neutron {collection} {name}")))?;
        let key = collection.replace('-', "_");
        Ok(v.get(&key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| e.get("name").and_then(Value::as_str) == Some(name))
            .filter_map(|e| e.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Deletes `collection/id`; gone already is fine; "in use" (409) is retried a few times
    /// (a port of a server being deleted still holds its security group for a moment).
    async fn delete_named(&self, collection: &str, id: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self
                .neutron(Method::DELETE, &[collection, id], &[], None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.kind == osauth::ErrorKind::Conflict && attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(e.into_driver(&format!("Neutron delete of {collection} {id}")))
                }
            }
        }
    }

    async fn create_port(&self, body: Value, what: &str) -> Result<Port> {
        let v = self
            .neutron(Method::POST, &["ports"], &[], Some(&body))
            .await
            .map_err(|e| e.into_driver(&format!("Neutron create of the {what} port")))?;
        port_of(v.get("port").unwrap_or(&Value::Null))
    }

    /// The network floating IPs come from: `[network] public_network_id`, else the first
    /// external network.
    async fn public_network(&self) -> Result<String> {
        if let Some(id) = &self.inner.opts.public_network_id {
            return Ok(id.clone());
        }
        let v = self
            .neutron(
                Method::GET,
                &["networks"],
                &[("router:external", "true".to_owned())],
                None,
            )
            .await
            .map_err(|e| e.into_driver("listing external Neutron networks"))?;
        v.get("networks")
            .and_then(Value::as_array)
            .and_then(|n| n.first())
            .and_then(|n| n.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DriverError::Invalid(
                    "a public instance needs a floating IP, but there is no external network \
                     (set [network] public_network_id)"
                        .into(),
                )
            })
    }

    /// A floating IP on the public network for `port_id` (the user port of a public
    /// instance): its address, of type `public`.
    async fn floating_ip(&self, instance_id: &str, port_id: &str) -> Result<Address> {
        let network = self.public_network().await?;
        let body = json!({"floatingip": {
            "floating_network_id": network,
            "port_id": port_id,
            "description": format!("Floating IP for trove instance {instance_id}"),
        }});
        let v = self
            .neutron(Method::POST, &["floatingips"], &[], Some(&body))
            .await
            .map_err(|e| e.into_driver(&format!("Neutron floating IP for port {port_id}")))?;
        let address = v
            .pointer("/floatingip/floating_ip_address")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                DriverError::Api("Neutron's answer has no floating IP address".into())
            })?;
        Ok(Address {
            address: address.to_owned(),
            kind: "public".to_owned(),
            network: String::new(),
        })
    }

    async fn allocate_inner(&self, req: &NetworkRequest, name: &str) -> Result<Vec<Port>> {
        let opts = &self.inner.opts;
        let id = &req.instance_id;
        let mut group = None;
        if opts.security_groups {
            let sg_name = format!("{}-{}", opts.security_group_prefix, id);
            let body = json!({"security_group": {
                "name": sg_name,
                "description": format!("Security group for trove instance {id}"),
            }});
            let v = self
                .neutron(Method::POST, &["security-groups"], &[], Some(&body))
                .await
                .map_err(|e| {
                    e.into_driver(&format!("Neutron create of security group {sg_name}"))
                })?;
            let sg_id = v
                .pointer("/security_group/id")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    DriverError::Api("Neutron's answer has no security group id".into())
                })?
                .to_owned();
            let cidrs = rule_cidrs(req.access.as_ref(), &opts.security_group_rule_cidr);
            for rule in rule_bodies(&sg_id, &req.tcp_ports, &req.udp_ports, &cidrs) {
                self.neutron(Method::POST, &["security-group-rules"], &[], Some(&rule))
                    .await
                    .map_err(|e| {
                        e.into_driver(&format!("Neutron rule of security group {sg_name}"))
                    })?;
            }
            group = Some(sg_id);
        }
        let own_groups: Vec<String> = group.iter().cloned().collect();
        let mut ports = Vec::new();
        for nic in &req.nics {
            let Some(network) = nic
                .get("network_id")
                .or_else(|| nic.get("net-id"))
                .and_then(Value::as_str)
            else {
                return Err(DriverError::Invalid(format!(
                    "a NIC of instance {id} has no network_id"
                )));
            };
            let mut port = json!({
                "name": name,
                "network_id": network,
                "description": format!("User port for trove instance {id}"),
                "security_groups": own_groups,
            });
            let subnet = nic.get("subnet_id").and_then(Value::as_str);
            let ip = nic
                .get("ip_address")
                .or_else(|| nic.get("v4-fixed-ip"))
                .and_then(Value::as_str);
            if subnet.is_some() || ip.is_some() {
                let mut fixed = serde_json::Map::new();
                if let Some(s) = subnet {
                    fixed.insert("subnet_id".into(), json!(s));
                }
                if let Some(a) = ip {
                    fixed.insert("ip_address".into(), json!(a));
                }
                port["fixed_ips"] = json!([fixed]);
            }
            let mut made = self.create_port(json!({ "port": port }), "user").await?;
            let public = req
                .access
                .as_ref()
                .and_then(|a| a.get("is_public"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if public {
                let address = self.floating_ip(id, &made.id).await?;
                made.addresses.push(address);
            }
            ports.push(made);
        }
        if let Some(network) = opts.management_networks.last() {
            let groups = if opts.management_security_groups.is_empty() {
                own_groups.clone()
            } else {
                opts.management_security_groups.clone()
            };
            let port = json!({"port": {
                "name": name,
                "network_id": network,
                "description": format!("Management port for trove instance {id}"),
                "security_groups": groups,
            }});
            ports.push(self.create_port(port, "management").await?);
        }
        Ok(ports)
    }
}

#[async_trait]
impl NetworkDriver for OpenStackDriver {
    async fn allocate(&self, req: &NetworkRequest) -> Result<Vec<Port>> {
        let name = resource_name(&req.instance_id);
        match self.allocate_inner(req, &name).await {
            Ok(ports) => Ok(ports),
            Err(e) => {
                // Leave nothing behind: the ports and the group are found by name.
                if let Err(clean) = self.release(&req.instance_id).await {
                    tracing::warn!(instance = %req.instance_id, error = %clean,
                        "clean-up after a failed network allocation failed");
                }
                Err(e)
            }
        }
    }

    async fn release(&self, instance_id: &str) -> Result<()> {
        let name = resource_name(instance_id);
        for port in self.ids_named("ports", &name).await? {
            let fips = self
                .neutron(
                    Method::GET,
                    &["floatingips"],
                    &[("port_id", port.clone())],
                    None,
                )
                .await
                .map_err(|e| e.into_driver("listing Neutron floating IPs"))?;
            for fip in fips
                .get("floatingips")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| f.get("port_id").and_then(Value::as_str) == Some(port.as_str()))
                .filter_map(|f| f.get("id").and_then(Value::as_str))
            {
                self.delete_named("floatingips", fip).await?;
            }
            self.delete_named("ports", &port).await?;
        }
        let sg_name = format!("{}-{}", self.inner.opts.security_group_prefix, instance_id);
        for sg in self.ids_named("security-groups", &sg_name).await? {
            self.delete_named("security-groups", &sg).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_default_when_none_given() {
        assert_eq!(rule_cidrs(None, "0.0.0.0/0"), vec!["0.0.0.0/0"]);
        let access = json!({"is_public": true, "allowed_cidrs": []});
        assert_eq!(rule_cidrs(Some(&access), "0.0.0.0/0"), vec!["0.0.0.0/0"]);
        let access = json!({"allowed_cidrs": ["10.0.0.0/8", "2001:db8::/32"]});
        assert_eq!(
            rule_cidrs(Some(&access), "0.0.0.0/0"),
            vec!["10.0.0.0/8", "2001:db8::/32"]
        );
    }

    #[test]
    fn one_rule_per_port_and_cidr() {
        let cidrs = vec!["10.0.0.0/8".to_owned(), "2001:db8::/32".to_owned()];
        let rules = rule_bodies("sg", &[3306], &[53], &cidrs);
        assert_eq!(rules.len(), 4);
        let r = &rules[1]["security_group_rule"];
        assert_eq!(r["protocol"], "tcp");
        assert_eq!(r["port_range_min"], 3306);
        assert_eq!(r["ethertype"], "IPv6");
        assert_eq!(r["direction"], "ingress");
        assert_eq!(rules[2]["security_group_rule"]["protocol"], "udp");
        assert!(rule_bodies("sg", &[], &[], &cidrs).is_empty());
    }

    #[test]
    fn ports_carry_their_fixed_ips() {
        let p = port_of(&json!({"id": "p1", "network_id": "n1",
            "fixed_ips": [{"subnet_id": "s", "ip_address": "10.1.0.4"}]}))
        .unwrap();
        assert_eq!(p.id, "p1");
        assert_eq!(p.addresses[0].address, "10.1.0.4");
        assert_eq!(p.addresses[0].network, "n1");
        assert!(port_of(&json!({})).is_err());
    }
}
