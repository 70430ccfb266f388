//! `flavor_create NAME RAM VCPUS DISK [--id ID] [--ephemeral GB]`, `flavor_delete ID`,
//! `flavor_list`: flavors served by the local compute driver.

use trove_db::{Db, NewFlavor};

use crate::ManageError;

pub(crate) async fn create(
    db: &Db,
    name: String,
    ram: i32,
    vcpus: i32,
    disk: i32,
    id: Option<String>,
    ephemeral: i32,
) -> Result<String, ManageError> {
    let f = db
        .flavor_create(&NewFlavor {
            id,
            name,
            ram,
            vcpus,
            disk,
            ephemeral,
        })
        .await?;
    Ok(format!("Flavor '{}' created with id {}.", f.name, f.id))
}

pub(crate) async fn delete(db: &Db, id: &str) -> Result<String, ManageError> {
    db.flavor_delete(id).await?;
    Ok(format!("Flavor {id} deleted."))
}

pub(crate) async fn list(db: &Db) -> Result<String, ManageError> {
    let flavors = db.flavor_list().await?;
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".to_string(),
        "RAM".to_string(),
        "VCPUS".to_string(),
        "DISK".to_string(),
        "EPHEMERAL".to_string(),
    ]];
    for f in &flavors {
        rows.push([
            f.id.clone(),
            f.name.clone(),
            f.ram.to_string(),
            f.vcpus.to_string(),
            f.disk.to_string(),
            f.ephemeral.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect();
    Ok(lines.join("\n"))
}
