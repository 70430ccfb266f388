//! The check string language: parsing (precedence, parentheses, quoting,
//! errors) and the meaning of each kind of check.

use trove_api::policy::parser::{parse_list_rule, Field, Template};
use trove_api::policy::{parse_check_str, Check, Credentials, Enforcer, Target};

fn parse(text: &str) -> Check {
    parse_check_str("test", text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn role(name: &str) -> Check {
    Check::Role(Template::literal(name))
}

fn err(text: &str) -> (usize, String) {
    let e = parse_check_str("my:rule", text).expect_err(text);
    assert_eq!(e.rule, "my:rule");
    (e.column, e.message)
}

#[test]
fn atoms() {
    assert_eq!(parse(""), Check::Always);
    assert_eq!(parse("@"), Check::Always);
    assert_eq!(parse("!"), Check::Never);
    assert_eq!(parse("rule:admin"), Check::Rule("admin".into()));
    assert_eq!(parse("role:admin"), role("admin"));
    // Only the first colon separates kind from match.
    assert_eq!(parse("role:compute:admin"), role("compute:admin"));
    assert_eq!(
        parse("is_admin:True"),
        Check::Field {
            field: Field::Credential("is_admin".into()),
            value: Template::literal("True")
        }
    );
    assert_eq!(
        parse("project_id:%(tenant)s").to_string(),
        "project_id:%(tenant)s"
    );
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let (a, b, c, d) = (role("a"), role("b"), role("c"), role("d"));
    assert_eq!(
        parse("role:a or role:b and role:c"),
        Check::Or(vec![a.clone(), Check::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        parse("role:a and role:b or role:c and role:d"),
        Check::Or(vec![
            Check::And(vec![a.clone(), b.clone()]),
            Check::And(vec![c.clone(), d.clone()])
        ])
    );
    assert_eq!(
        parse("not role:a and role:b"),
        Check::And(vec![Check::Not(Box::new(a.clone())), b.clone()])
    );
    assert_eq!(
        parse("role:a or not role:b"),
        Check::Or(vec![a.clone(), Check::Not(Box::new(b.clone()))])
    );
    assert_eq!(
        parse("not not role:a"),
        Check::Not(Box::new(Check::Not(Box::new(a.clone()))))
    );
    assert_eq!(
        parse("role:a or role:b or role:c"),
        Check::Or(vec![a, b, c])
    );
}

#[test]
fn parentheses_group() {
    let (a, b, c) = (role("a"), role("b"), role("c"));
    assert_eq!(
        parse("(role:a or role:b) and role:c"),
        Check::And(vec![Check::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(parse("((role:a))"), a.clone());
    assert_eq!(
        parse("not (role:a or role:b)"),
        Check::Not(Box::new(Check::Or(vec![a.clone(), b.clone()])))
    );
    // Parentheses inside a substitution are not grouping.
    assert_eq!(
        parse("(role:a or project_id:%(tenant)s)").to_string(),
        "(role:a or project_id:%(tenant)s)"
    );
    // Spaces around parentheses are optional, either way.
    assert_eq!(parse("( role:a or role:b )"), parse("(role:a or role:b)"));
}

#[test]
fn keywords_are_case_insensitive_and_whitespace_is_free() {
    assert_eq!(parse("role:a AND role:b"), parse("role:a and role:b"));
    assert_eq!(parse("NOT role:a Or role:b"), parse("not role:a or role:b"));
    assert_eq!(parse("  role:a\tand\nrole:b  "), parse("role:a and role:b"));
}

#[test]
fn quoting() {
    // A quoted left side is a literal compared with the substituted value.
    assert_eq!(
        parse("'member':%(role.name)s"),
        Check::Field {
            field: Field::Literal("member".into()),
            value: parse_value("%(role.name)s")
        }
    );
    assert_eq!(parse("\"xy\":%(k)s").to_string(), "'xy':%(k)s");
    assert!(
        matches!(parse("True:%(enabled)s"), Check::Field { field: Field::Literal(l), .. } if l == "True")
    );
    assert!(
        matches!(parse("42:%(n)s"), Check::Field { field: Field::Literal(l), .. } if l == "42")
    );
    // A whole token in quotes is not a check.
    let (col, msg) = err("role:a or 'role:b'");
    assert_eq!(col, 11);
    assert!(msg.contains("quoted string"), "{msg}");
    // %% is a literal percent sign.
    assert_eq!(parse("role:100%%").to_string(), "role:100%%");
}

fn parse_value(v: &str) -> Template {
    match parse(&format!("x:{v}")) {
        Check::Field { value, .. } => value,
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_name_the_rule_and_the_column() {
    let e = parse_check_str("instance:show", "role:admin or (project_id:%(tenant)s").unwrap_err();
    assert_eq!(e.rule, "instance:show");
    assert_eq!(e.column, 15);
    assert!(e.to_string().contains("\"instance:show\""), "{e}");
    assert!(e.to_string().contains("column 15"), "{e}");
    assert!(e.message.contains("never closed"), "{}", e.message);

    assert_eq!(err("role:a and").0, 11);
    assert!(err("role:a and").1.contains("unexpected end"));
    assert_eq!(err("role:a role:b").0, 8);
    assert_eq!(err("role:a)").0, 7);
    assert!(err("role:a)").1.contains("')'"));
    assert_eq!(err("role:a or or role:b").0, 11);
    assert_eq!(err("()").0, 2);
    assert_eq!(err("role:a and admin").0, 12);
    assert!(err("role:a and admin").1.contains("kind:match"));
    assert_eq!(err("   ").0, 1);
    // A malformed substitution points at its '%'.
    assert_eq!(err("role:a or project_id:%(tenant)d").0, 22);
    assert_eq!(err("project_id:%tenant").0, 12);
    // Remote checks are refused when loading.
    let (col, msg) = err("role:a or http://policy.example.com/check");
    assert_eq!(col, 11);
    assert!(msg.contains("http"), "{msg}");
    // Non-ASCII text counts columns in characters.
    assert_eq!(err("role:é role:b").0, 8);
}

#[test]
fn display_round_trips() {
    for text in [
        "rule:admin or project_id:%(tenant)s",
        "not (role:a or role:b) and is_admin:True",
        "@",
        "!",
        "'member':%(r)s and role:x%(a)s-%(b)s",
    ] {
        let check = parse(text);
        assert_eq!(parse(&check.to_string()), check, "{text}");
    }
}

#[test]
fn list_of_lists() {
    let l = |v: &[&[&str]]| -> Vec<Vec<String>> {
        v.iter()
            .map(|inner| inner.iter().map(|s| s.to_string()).collect())
            .collect()
    };
    assert_eq!(parse_list_rule("r", &[]).unwrap(), Check::Always);
    assert_eq!(parse_list_rule("r", &l(&[&[]])).unwrap(), Check::Never);
    assert_eq!(parse_list_rule("r", &l(&[&["role:a"]])).unwrap(), role("a"));
    assert_eq!(
        parse_list_rule("r", &l(&[&["role:a", "role:b"], &["role:c"]])).unwrap(),
        Check::Or(vec![Check::And(vec![role("a"), role("b")]), role("c")])
    );
    let e = parse_list_rule("r", &l(&[&["nocolon"]])).unwrap_err();
    assert_eq!(e.rule, "r");
}

/// Evaluates a check string (as the `probe` rule) for the given caller and
/// target project.
fn eval(check: &str, creds: &Credentials, tenant: &str) -> bool {
    let enforcer = Enforcer::with_overrides([("probe", check)]).unwrap();
    enforcer.check("probe", creds, &Target::tenant(tenant))
}

fn member(project: &str) -> Credentials {
    Credentials::new(project, "user-1", vec!["member".into(), "Reader".into()])
}

#[test]
fn at_allows_and_bang_denies() {
    let c = member("p1");
    assert!(eval("@", &c, "p2"));
    assert!(eval("", &c, "p2"));
    assert!(!eval("!", &c, "p1"));
    assert!(!eval("! or !", &c, "p1"));
    assert!(eval("not !", &c, "p1"));
}

#[test]
fn role_checks_ignore_case() {
    let c = member("p1");
    assert!(eval("role:member", &c, "p1"));
    assert!(eval("role:MEMBER", &c, "p1"));
    assert!(eval("role:reader", &c, "p1"));
    assert!(!eval("role:admin", &c, "p1"));
    // The role name may come from the target.
    let enforcer = Enforcer::with_overrides([("probe", "role:%(needed)s")]).unwrap();
    assert!(enforcer.check("probe", &c, &Target::default().with("needed", "Member")));
    assert!(!enforcer.check("probe", &c, &Target::default()));
}

#[test]
fn generic_checks_compare_credentials_with_the_target() {
    let c = member("p1");
    assert!(eval("project_id:%(tenant)s", &c, "p1"));
    assert!(!eval("project_id:%(tenant)s", &c, "p2"));
    assert!(eval("tenant:%(tenant)s", &c, "p1"));
    assert!(eval("project_id:p1", &c, "anything"));
    assert!(eval("user_id:user-1", &c, "p1"));
    assert!(eval("user:user-1", &c, "p1"));
    // `roles:` is an exact comparison, unlike `role:`.
    assert!(eval("roles:member", &c, "p1"));
    assert!(!eval("roles:MEMBER", &c, "p1"));
    // Unknown credential fields and missing target keys never match.
    assert!(!eval("domain_id:%(tenant)s", &c, "p1"));
    assert!(!eval("project_id:%(owner)s", &c, "p1"));
    assert!(eval("not project_id:%(owner)s", &c, "p1"));
    // Several substitutions in one value.
    let e = Enforcer::with_overrides([("probe", "user_id:%(a)s-%(b)s")]).unwrap();
    let c2 = Credentials::new("p", "x-y", vec![]);
    assert!(e.check(
        "probe",
        &c2,
        &Target::default().with("a", "x").with("b", "y")
    ));
    assert!(!e.check(
        "probe",
        &c2,
        &Target::default().with("a", "x").with("b", "z")
    ));
}

#[test]
fn is_admin_and_literals() {
    let mut c = member("p1");
    assert!(!eval("is_admin:True", &c, "p1"));
    assert!(eval("is_admin:False", &c, "p1"));
    c.is_admin = true;
    assert!(eval("is_admin:True", &c, "p1"));
    // A literal left side compares with the (substituted) right side.
    assert!(eval("'p1':%(tenant)s", &c, "p1"));
    assert!(!eval("'p1':%(tenant)s", &c, "p2"));
    assert!(eval("True:True", &c, "p2"));
}
