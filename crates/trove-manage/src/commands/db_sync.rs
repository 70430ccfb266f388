//! `db_sync`, `db_upgrade [--version REV]` and `db_recreate`.

use trove_db::migrate::{migrations, ALEMBIC_HEAD};
use trove_db::Db;

use crate::ManageError;

fn report(db: &Db, applied: &[i64], version: Option<i64>) -> String {
    let v = version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "none".into());
    if applied.is_empty() {
        format!(
            "Database schema ({}) is up to date at version {v}.",
            db.backend()
        )
    } else {
        let list: Vec<String> = applied.iter().map(|a| a.to_string()).collect();
        format!(
            "Applied migrations {} ({}); schema is at version {v}.",
            list.join(", "),
            db.backend()
        )
    }
}

/// `db_sync`: migrate to the newest version.
pub(crate) async fn db_sync(db: &Db) -> Result<String, ManageError> {
    let applied = db.migrate().await?;
    Ok(report(db, &applied, db.schema_version().await?))
}

/// `db_upgrade --version REV`: `head` (default) or Trove's alembic head revision.
pub(crate) async fn db_upgrade(db: &Db, version: Option<&str>) -> Result<String, ManageError> {
    let target = match version.unwrap_or("head") {
        "head" | "heads" => None,
        ALEMBIC_HEAD => Some(1),
        v if v.chars().all(|c| c.is_ascii_digit()) => {
            return Err(ManageError::Unsupported(format!(
                "Numeric version '{v}': sqlalchemy-migrate versions are no longer supported; use 'head'."
            )))
        }
        v => {
            return Err(ManageError::Invalid(format!(
                "Unknown revision '{v}' (expected 'head' or '{ALEMBIC_HEAD}')."
            )))
        }
    };
    let applied = db.migrate_to(&migrations(), target).await?;
    Ok(report(db, &applied, db.schema_version().await?))
}

/// `db_recreate`: drop every table, then migrate.
pub(crate) async fn db_recreate(db: &Db) -> Result<String, ManageError> {
    db.drop_all_tables().await?;
    let applied = db.migrate().await?;
    Ok(report(db, &applied, db.schema_version().await?))
}
