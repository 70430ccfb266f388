//! Flavors (api.md §12): integer-or-null `id` plus `str_id`.

use serde_json::{json, Map, Value};
use trove_db::Flavor;

use crate::context::RequestContext;

/// The JSON `id` of a flavor: an integer when the id is all digits without a leading
/// zero, else `null`.
pub fn int_id(id: &str) -> Value {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = id.len() > 1 && id.starts_with('0');
    match id.parse::<i64>() {
        Ok(n) if digits && !leading_zero => json!(n),
        _ => Value::Null,
    }
}

/// One flavor; `local_storage` is added when flavors are not shown as volume-backed.
pub fn flavor(ctx: &RequestContext, f: &Flavor, local_storage: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), int_id(&f.id));
    m.insert("str_id".into(), f.id.clone().into());
    m.insert("name".into(), f.name.clone().into());
    m.insert("ram".into(), f.ram.into());
    m.insert("vcpus".into(), f.vcpus.into());
    m.insert("disk".into(), f.disk.into());
    m.insert("ephemeral".into(), f.ephemeral.into());
    if local_storage {
        m.insert("local_storage".into(), f.ephemeral.into());
    }
    m.insert("links".into(), ctx.links("flavors", &f.id));
    Value::Object(m)
}

/// The reference to a flavor inside an instance (`id` always a string).
pub fn flavor_ref(ctx: &RequestContext, id: &str) -> Value {
    json!({"id": id, "links": ctx.links("flavors", id)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ids() {
        assert_eq!(int_id("2"), json!(2));
        assert_eq!(int_id("0"), json!(0));
        assert_eq!(int_id("02"), Value::Null);
        assert_eq!(int_id("d2"), Value::Null);
        assert_eq!(int_id("99999999999999999999999"), Value::Null);
        assert_eq!(int_id(""), Value::Null);
    }
}
