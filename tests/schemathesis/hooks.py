"""Values a generator cannot derive from a JSON Schema because their validity is a parser's or
another resource's: strategies for the document's own string formats
(crates/cadenza-api/src/formats.rs, docs/API.md "String formats": Liquid, Rust regex, WHATWG
URL), and, in positive cases only (`map_case`), valid values where a rule is beyond JSON Schema
(stored JSON Schemas, distinct secret names, time zones, an offset below its interval) or where
what the body names decides (a model the server serves, a first message). Each draws only values
the server must take; what lies outside is the unit tests' to hold
(`formats_carry_what_the_schema_cannot`, the `create_schema_agrees_with_…` tests). Loaded by
`run` through SCHEMATHESIS_HOOKS; docs/TESTING.md says why each is here."""

import re

import schemathesis
from hypothesis import strategies as st

# Text with no Liquid markup: no braces or percent signs, no surrogates (not JSON text).
plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="{}%"), max_size=20)

# Names a template may reference, as `secrets.NAME`.
secret_name = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,10}\Z")
expression = st.one_of(
    secret_name.map(lambda n: "{{ secrets." + n + " }}"),
    st.sampled_from(["{{ objective.id }}", "{{ x | upcase }}", "{{ 'a' | append: 'b' }}"]),
)
liquid_template = st.lists(st.one_of(plain, expression), max_size=4).map("".join)

# Regex pieces that compile in Rust's syntax whatever their order.
regex_piece = st.one_of(
    st.text(st.characters(categories=("L", "Nd")), min_size=1, max_size=5),
    st.sampled_from(["^", "$", ".", ".*", "[a-z]+", r"\d", r"\w+", "(ab|cd)", "x?", r"\.", "[^/]"]),
)
rust_regex = st.lists(regex_piece, max_size=6).map("".join)

# Hosts the egress policy lets through at write time, and none that resolve elsewhere: loopback
# (allowed by default) and names under `.invalid` (RFC 6761: never resolve), so a sync the run
# starts fails fast instead of reaching out.
host = st.one_of(
    st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,12}\Z").map(lambda n: n + ".invalid"),
)
port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
path = st.from_regex(r"\A(/[A-Za-z0-9._~-]{0,8}){0,3}(\?[a-z]=[0-9]{1,3})?\Z")
http_url = st.builds(lambda s, h, p, rest: f"{s}://{h}{p}{rest}", st.sampled_from(["http", "https"]), host, port, path)

schemathesis.openapi.format("liquid-template", liquid_template)
schemathesis.openapi.format("rust-regex", rust_regex)
schemathesis.openapi.format("http-url", http_url)

# Stored JSON Schemas (an agent's input and output schemas, a tool's parameters): any object
# has their form, the document's `type: object`, but only one whose keywords are used right is a
# schema, which a generator cannot know. A drawn object is replaced by one of these, chosen by
# its size (a deterministic map: a shrunk case stays what it was). An agent's input schema is
# drawn from the ones most objects fit, so that the objectives the run starts on it (their data
# drawn as any object) get past it often.
SCHEMAS = [
    {},
    {"type": "object"},
    {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
]
INPUT_SCHEMAS = [{}, {"type": "object"}, {"type": "object", "properties": {"n": {"type": "integer"}}}]
STORED_SCHEMAS = {
    "create_agent": [
        ("spec", "inputDataSchema", INPUT_SCHEMAS),
        ("spec", "systemPromptDataSchema", INPUT_SCHEMAS),
        ("spec", "outputDefinition", SCHEMAS),
    ],
    "create_tool": [("spec", "parameters", SCHEMAS)],
}
STORED_SCHEMAS["update_agent"] = STORED_SCHEMAS["create_agent"]
STORED_SCHEMAS["update_tool"] = STORED_SCHEMAS["replace_tool"] = STORED_SCHEMAS["create_tool"]

# Time zones the server's zone database holds (any case), and UTC's spellings.
ZONES = ["", "UTC", "Europe/Paris", "america/new_york", "Asia/Tokyo", "Australia/Sydney"]

# The secrets' grammar (domain `secrets::NAME_PATTERN`), for names a rename must keep valid.
SECRET_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,127}\Z")

# A duration of the document's grammar ("<seconds>s"), for offsets held below their interval.
DURATION = re.compile(r"\A-?[0-9]+(\.[0-9]+)?s\Z")


def stored_schemas(op_id, body):
    for parent, key, choices in STORED_SCHEMAS.get(op_id, []):
        holder = body.get(parent)
        if isinstance(holder, dict) and isinstance(holder.get(key), dict):
            holder[key] = choices[len(holder[key]) % len(choices)]


def distinct_secret_names(body):
    """Objective secrets' names must differ, which JSON Schema cannot say. A name that repeats
    an earlier one is renamed to a valid one that does not."""
    secrets = body.get("secrets")
    if not isinstance(secrets, list):
        return
    seen = set()
    for item in secrets:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            continue
        n = 0
        while name in seen:
            n += 1
            name = item["name"][:120] + "_" + str(n)
        item["name"] = name
        seen.add(name)


def schedule_rule(body):
    """A schedule's time zone is looked up in the server's zone database, and an interval's
    offset must be less than its `every`: two rules over values JSON Schema cannot compare or
    list. A drawn zone (a string) becomes one the database holds; a drawn offset of the duration
    grammar that is not below its interval (with a second's margin for rounding) becomes 0 s."""
    spec = body.get("spec")
    rule = spec.get("schedule") if isinstance(spec, dict) else None
    if not isinstance(rule, dict):
        return
    zone = rule.get("timezone")
    if isinstance(zone, str):
        rule["timezone"] = ZONES[len(zone) % len(ZONES)]
    intervals = rule.get("intervals")
    for interval in intervals if isinstance(intervals, list) else []:
        if not isinstance(interval, dict):
            continue
        every, offset = interval.get("every"), interval.get("offset")
        if not (isinstance(every, str) and DURATION.match(every) and isinstance(offset, str) and DURATION.match(offset)):
            continue
        if not 0 <= float(offset[:-1]) <= float(every[:-1]) - 1.5:
            interval["offset"] = "0s"


# The model of the run's fake model server (`run` configures it as provider `fake`).
FAKE_MODEL = "fake/gpt-fake"


def usable_model(spec, add=True):
    """A variation's model is looked up among the configured providers' (a `provider/model` name,
    or the catalog entry's id or external id): a drawn name names none (`MODEL_UNKNOWN`), and a
    variation without a model runs no objective. A drawn value of the name form (any string with
    a `/`, or `external_id:…`) becomes the fake's model, and a variation that leaves `spec` or
    its `modelConfig` out gets one naming it (optional fields, added valid; on create only, `add`:
    an update that leaves it out keeps its model); a model id is left as drawn."""
    if not isinstance(spec, dict):
        return
    if add and "modelConfig" not in spec:
        spec["modelConfig"] = {"modelId": FAKE_MODEL}
    config = spec.get("modelConfig")
    model = config.get("modelId") if isinstance(config, dict) else None
    if isinstance(model, str) and ("/" in model or (model.startswith("external_id:") and len(model) > 12)):
        config["modelId"] = FAKE_MODEL


def runnable_agent(body):
    """An objective runs its agent's variation, and an agent made without `defaultVariation` has
    none (`AGENT_HAS_NO_VARIATION`), which is what the generator draws most: every other such
    agent (by the body's size, so a shrunk case stays what it was) gets a default variation on
    the fake's model, so the objectives the stateful phase starts on agents it made can run."""
    if body.get("defaultVariation") is None and len(repr(body)) % 2 == 0:
        body["defaultVariation"] = {"metadata": {"name": "default"}, "spec": {"modelConfig": {"modelId": FAKE_MODEL}}}


def first_message(body):
    """An objective needs a first message: sent, or rendered from its variation's first-message
    template, which most variations the run makes leave empty (OBJECTIVE_MESSAGE_REQUIRED, a
    refusal for the variation's state). Where neither spelling carries one (left out, `null` or
    blank), one is sent, so that objectives get made."""
    given = [body.get(k) for k in ("initialMessage", "firstUserMessage")]
    if all(v is None or (isinstance(v, str) and not v.strip()) for v in given):
        body["initialMessage"] = "Hello"


def make_valid(op_id, body):
    stored_schemas(op_id, body)
    if op_id in ("create_objective", "continue_objective", "continue_objective_path"):
        distinct_secret_names(body)
    if op_id == "create_objective":
        first_message(body)
    if op_id == "create_agent":
        runnable_agent(body)
        if isinstance(body.get("defaultVariation"), dict):
            usable_model(body["defaultVariation"].setdefault("spec", {}))
    if op_id == "create_variation":
        usable_model(body.setdefault("spec", {}))
    if op_id == "update_variation":
        usable_model(body.get("spec"), add=False)
    if op_id in ("create_schedule", "update_schedule"):
        schedule_rule(body)


@schemathesis.hook
def map_case(ctx, case):
    """Positive cases only: a negative case must be refused whatever these values are, and
    schemathesis judges a case negative from its body before this hook runs, so a value made
    valid here could hide the one violation it generated (a request it then expects refused)."""
    meta = case.meta
    if meta is not None and meta.generation.mode != "positive":
        return case
    body = case.body
    if isinstance(body, dict):
        make_valid(case.operation.definition.raw.get("operationId"), body)
        case.body = body
    return case
