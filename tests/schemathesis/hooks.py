"""Values a generator cannot derive from a JSON Schema because their validity is a parser's:
strategies for the document's own string formats (crates/cadenza-api/src/formats.rs,
docs/API.md "String formats": Liquid, Rust regex, WHATWG URL), and valid JSON Schemas for the
fields that store one. Each draws only values the server must take; what lies outside is the
unit tests' to hold (`formats_carry_what_the_schema_cannot`, the `create_schema_agrees_with_…`
tests). Loaded by `run` through SCHEMATHESIS_HOOKS; docs/TESTING.md says why each is here."""

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

# Stored JSON Schemas (an agent's input and output schemas): any object has their form, the
# document's `type: object`, but only one whose keywords are used right is a schema, which a
# generator cannot know. A drawn object is replaced by one of these, chosen by its size (a
# deterministic map: a shrunk case stays what it was). Values of another type are left alone:
# they are negative cases, which the server must refuse.
STORED_SCHEMAS = {
    "create_agent": [("spec", "inputDataSchema"), ("spec", "systemPromptDataSchema"), ("spec", "outputDefinition")],
}
SCHEMAS = [
    {},
    {"type": "object"},
    {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
]


@schemathesis.hook
def map_body(ctx, body):
    op = ctx.operation
    fields = STORED_SCHEMAS.get(op.definition.raw.get("operationId") if op is not None else None)
    if not fields or not isinstance(body, dict):
        return body
    for parent, key in fields:
        holder = body.get(parent)
        if isinstance(holder, dict) and isinstance(holder.get(key), dict):
            holder[key] = SCHEMAS[len(holder[key]) % len(SCHEMAS)]
    return body
