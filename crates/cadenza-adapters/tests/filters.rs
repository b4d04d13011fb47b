//! includeTools / excludeTools / toolApprovals.

use cadenza_adapters::DiscoveredTool;
use cadenza_adapters::filters::{
    ApprovalRequirementFilter, Attribute, AttributeFilter, MatchKind, Operator, StringMatcher, ToolFilter, apply,
    classify,
};
use serde_json::{Value, json};

fn tool(name: &str, title: Option<&str>, description: &str) -> DiscoveredTool {
    DiscoveredTool::new(name, title.map(str::to_owned), description, json!({"type": "object"}), None, None)
}

fn tools() -> Vec<DiscoveredTool> {
    vec![
        tool("get_weather", Some("Weather"), "Current weather for a city"),
        tool("Delete_City", Some("Delete city"), "Removes a city. DESTRUCTIVE."),
        tool("list_cities", None, "Lists every city"),
    ]
}

fn filter(v: Value) -> ToolFilter {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("filter: {e}"))
}

fn names(kept: &[(DiscoveredTool, bool)]) -> Vec<&str> {
    kept.iter().map(|(t, _)| t.name.as_str()).collect()
}

fn one(attribute: &str, matcher: Value) -> ToolFilter {
    filter(json!({"operator": "OPERATOR_AND", "filters": [{"attribute": attribute, "matcher": matcher}]}))
}

#[test]
fn every_matcher_kind_and_case_sensitivity() {
    let t = tools();
    // (matcher, names matched case-insensitively, names matched case-sensitively)
    let cases: Vec<(Value, Vec<&str>, Vec<&str>)> = vec![
        (json!({"exact": "delete_city"}), vec!["Delete_City"], vec![]),
        (json!({"exact": "Delete_City"}), vec!["Delete_City"], vec!["Delete_City"]),
        (json!({"startsWith": "DELETE"}), vec!["Delete_City"], vec![]),
        (json!({"startsWith": "get_"}), vec!["get_weather"], vec!["get_weather"]),
        (json!({"endsWith": "CITIES"}), vec!["list_cities"], vec![]),
        (json!({"endsWith": "_City"}), vec!["Delete_City"], vec!["Delete_City"]),
        (json!({"contains": "CIT"}), vec!["Delete_City", "list_cities"], vec![]),
        (json!({"contains": "cit"}), vec!["Delete_City", "list_cities"], vec!["list_cities"]),
        (json!({"regex": "^(get|list)_"}), vec!["get_weather", "list_cities"], vec!["get_weather", "list_cities"]),
        (json!({"regex": "city$"}), vec!["Delete_City"], vec![]),
    ];
    for (matcher, insensitive, sensitive) in cases {
        for (case_sensitive, expected) in [(false, &insensitive), (true, &sensitive)] {
            let mut m = matcher.clone();
            m["caseSensitive"] = json!(case_sensitive);
            let f = one("ATTRIBUTE_NAME", m.clone());
            assert!(f.validate("includeTools").is_ok());
            let matched: Vec<&str> = t.iter().filter(|x| f.matches(x)).map(|x| x.name.as_str()).collect();
            assert_eq!(&matched, expected, "{m}");
        }
    }
    // caseSensitive defaults to false.
    let f = one("ATTRIBUTE_NAME", json!({"exact": "GET_WEATHER"}));
    assert!(f.matches(&t[0]));
}

#[test]
fn title_and_description_attributes() {
    let t = tools();
    let by_title = one("ATTRIBUTE_TITLE", json!({"contains": "city"}));
    assert_eq!(t.iter().filter(|x| by_title.matches(x)).count(), 1);
    let untitled = one("ATTRIBUTE_TITLE", json!({"exact": ""}));
    assert!(untitled.matches(&t[2]), "a missing title is the empty string");
    let by_description = one("ATTRIBUTE_DESCRIPTION", json!({"contains": "destructive", "caseSensitive": true}));
    assert!(!by_description.matches(&t[1]));
    let by_description = one("ATTRIBUTE_DESCRIPTION", json!({"contains": "destructive"}));
    assert!(by_description.matches(&t[1]));
}

#[test]
fn and_or_composition() {
    let t = tools();
    let parts = json!([
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"contains": "cit"}},
        {"attribute": "ATTRIBUTE_DESCRIPTION", "matcher": {"startsWith": "lists"}}
    ]);
    let and = filter(json!({"operator": "OPERATOR_AND", "filters": parts}));
    let or = filter(json!({"operator": "OPERATOR_OR", "filters": parts}));
    let unspecified = filter(json!({"operator": "OPERATOR_UNSPECIFIED", "filters": parts}));
    let matched = |f: &ToolFilter| t.iter().filter(|x| f.matches(x)).map(|x| x.name.clone()).collect::<Vec<_>>();
    assert_eq!(matched(&and), ["list_cities"]);
    assert_eq!(matched(&or), ["Delete_City", "list_cities"]);
    assert_eq!(matched(&unspecified), matched(&and), "unspecified behaves as AND");
}

#[test]
fn apply_include_exclude_and_approvals() {
    let include = filter(json!({"operator": "OPERATOR_OR", "filters": [
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"contains": "city"}},
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"contains": "cities"}},
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"startsWith": "get"}}
    ]}));
    let exclude = one("ATTRIBUTE_NAME", json!({"exact": "list_cities"}));
    let approve_destructive: ApprovalRequirementFilter =
        serde_json::from_value(json!({"only": {"operator": "OPERATOR_AND", "filters": [
            {"attribute": "ATTRIBUTE_DESCRIPTION", "matcher": {"contains": "destructive"}}]}}))
        .unwrap_or_default();
    let always: ApprovalRequirementFilter = serde_json::from_value(json!({"always": true})).unwrap_or_default();
    let never: ApprovalRequirementFilter =
        serde_json::from_value(json!({"type": "always", "always": false})).unwrap_or_default();

    // No filters at all: everything, nothing needs approval.
    assert_eq!(names(&apply(tools(), None, None, None)), ["get_weather", "Delete_City", "list_cities"]);
    // Empty filters are no filters.
    let empty = ToolFilter::default();
    let kept = apply(tools(), Some(&empty), Some(&empty), Some(&ApprovalRequirementFilter::Only(empty.clone())));
    assert_eq!(names(&kept), ["get_weather", "Delete_City", "list_cities"]);
    assert!(kept.iter().all(|(_, approval)| !approval));

    let kept = apply(tools(), Some(&include), Some(&exclude), Some(&approve_destructive));
    assert_eq!(names(&kept), ["get_weather", "Delete_City"]);
    assert_eq!(kept.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [false, true]);

    let kept = apply(tools(), None, Some(&exclude), Some(&always));
    assert!(kept.iter().all(|(_, a)| *a));
    let kept = apply(tools(), None, None, Some(&never));
    assert!(kept.iter().all(|(_, a)| !a));

    let all = classify(tools(), Some(&include), Some(&exclude), None);
    assert_eq!(all.iter().map(|f| f.included).collect::<Vec<_>>(), [true, true, false], "classify keeps the omitted");
}

#[test]
fn wire_shapes_seed_and_tagged() {
    let seed = json!({"exact": "x", "caseSensitive": true});
    let tagged = json!({"type": "exact", "exact": "x", "caseSensitive": true});
    let a: StringMatcher = serde_json::from_value(seed).unwrap_or_else(|e| panic!("{e}"));
    let b: StringMatcher = serde_json::from_value(tagged.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
    assert_eq!(a, StringMatcher::new(MatchKind::Exact, "x", true));
    assert_eq!(serde_json::to_value(&a).ok(), Some(tagged), "responses always carry the tag");
    let starts: StringMatcher = serde_json::from_value(json!({"startsWith": "g"})).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        serde_json::to_value(&starts).ok(),
        Some(json!({"type": "startsWith", "startsWith": "g", "caseSensitive": false}))
    );

    for bad in
        [json!({}), json!({"exact": "a", "contains": "b"}), json!({"type": "regex", "exact": "a"}), json!({"exact": 5})]
    {
        assert!(serde_json::from_value::<StringMatcher>(bad.clone()).is_err(), "{bad}");
    }

    let f = ToolFilter::new(
        Operator::Or,
        vec![AttributeFilter::new(Attribute::Title, StringMatcher::new(MatchKind::Regex, "^a", false))],
    );
    assert_eq!(
        serde_json::to_value(&f).ok(),
        Some(json!({"operator": "OPERATOR_OR", "filters": [{"attribute": "ATTRIBUTE_TITLE",
            "matcher": {"type": "regex", "regex": "^a", "caseSensitive": false}}]}))
    );
    let back: ToolFilter = serde_json::from_value(serde_json::to_value(&f).unwrap_or_default()).unwrap_or_default();
    assert_eq!(back, f);
    assert!(serde_json::from_value::<ToolFilter>(json!({"operator": "AND"})).is_err());
    assert_eq!(serde_json::from_value::<ToolFilter>(json!({})).ok(), Some(ToolFilter::default()));

    let only: ApprovalRequirementFilter =
        serde_json::from_value(json!({"type": "only", "only": {"operator": "OPERATOR_AND"}}))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only, ApprovalRequirementFilter::Only(ToolFilter::new(Operator::And, vec![])));
    assert_eq!(
        serde_json::to_value(ApprovalRequirementFilter::Always(true)).ok(),
        Some(json!({"type": "always", "always": true}))
    );
    assert_eq!(
        serde_json::from_value::<ApprovalRequirementFilter>(json!({})).ok(),
        Some(ApprovalRequirementFilter::Always(false))
    );
    for bad in
        [json!({"always": true, "only": {}}), json!({"type": "only", "always": true}), json!({"type": "sometimes"})]
    {
        assert!(serde_json::from_value::<ApprovalRequirementFilter>(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn validation_messages() {
    let bad_regex = filter(json!({"operator": "OPERATOR_OR", "filters": [
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"exact": "ok"}},
        {"attribute": "ATTRIBUTE_NAME", "matcher": {"regex": "([a-z"}}
    ]}));
    let err = bad_regex.validate("spec.adapter.mcp.includeTools").err().unwrap_or_else(|| panic!("must fail"));
    assert_eq!(err.field, "spec.adapter.mcp.includeTools.filters[1].matcher.regex");
    assert!(err.message.starts_with("invalid regex"), "{}", err.message);
    assert!(!err.message.contains('\n'));
    let domain: cadenza_domain::Error = err.into();
    assert_eq!(domain.code.http_status(), 400);
    // Stored anyway? It matches nothing rather than panicking.
    assert!(!bad_regex.filters[1].matches(&tools()[0]));

    let huge = one("ATTRIBUTE_NAME", json!({"regex": "a".repeat(2_000)}));
    assert!(huge.validate("x").is_err());
    let blowup = one("ATTRIBUTE_NAME", json!({"regex": "(\\w{100}){100}"}));
    assert!(blowup.validate("x").is_err(), "compiled size is capped");

    let no_matcher = filter(json!({"operator": "OPERATOR_AND", "filters": [{"attribute": "ATTRIBUTE_NAME"}]}));
    assert_eq!(no_matcher.validate("f").err().map(|e| e.field), Some("f.filters[0].matcher".to_owned()));
    assert!(!no_matcher.matches(&tools()[0]));
    let no_attribute = filter(json!({"filters": [{"matcher": {"exact": "x"}}]}));
    assert_eq!(no_attribute.validate("f").err().map(|e| e.field), Some("f.filters[0].attribute".to_owned()));

    let approval: ApprovalRequirementFilter = serde_json::from_value(
        json!({"only": {"filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": {"regex": "("}}]}}),
    )
    .unwrap_or_default();
    assert_eq!(
        approval.validate("spec.adapter.mcp.toolApprovals").err().map(|e| e.field),
        Some("spec.adapter.mcp.toolApprovals.only.filters[0].matcher.regex".to_owned())
    );
}
