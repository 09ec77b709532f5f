"""The SDK's pure parts on CPython: schemas from type hints, input checks,
and the `run` logic of a tool (JSON in, function, JSON out, errors).

    python -m unittest discover -s guest-sdk/python/tests
"""

import dataclasses
import json
import sys
import unittest
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from airlock_sdk import ToolError, _schema, _Tool  # noqa: E402
from airlock_sdk.http import InvalidRequest, split_url  # noqa: E402


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1


def order(customer: str, lines: List[Line], note: Optional[str] = None, rush: bool = False) -> dict:
    """Places an order.

    Second paragraph is not part of the description.
    """
    return {"customer": customer, "skus": [l.sku for l in lines], "note": note, "rush": rush}


def kw(**extra: Any) -> Dict[str, Any]:
    return extra


class SchemaFromHints(unittest.TestCase):
    def test_object_schema_with_required_and_optional(self) -> None:
        schema = _schema.input_schema(order)
        self.assertEqual(schema["type"], "object")
        self.assertEqual(schema["required"], ["customer", "lines"])
        self.assertFalse(schema["additionalProperties"])
        self.assertEqual(schema["properties"]["customer"], {"type": "string"})
        self.assertEqual(schema["properties"]["rush"], {"type": "boolean"})
        self.assertEqual(
            schema["properties"]["note"], {"anyOf": [{"type": "string"}, {"type": "null"}]}
        )
        items = schema["properties"]["lines"]["items"]
        self.assertEqual(items["required"], ["sku"])
        self.assertEqual(items["properties"]["qty"], {"type": "integer"})

    def test_rows(self) -> None:
        for hint, want in [
            (int, {"type": "integer"}),
            (float, {"type": "number"}),
            (Literal["a", "b"], {"enum": ["a", "b"]}),
            (Dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
            (list, {"type": "array"}),
            (Any, {}),
        ]:
            self.assertEqual(_schema.schema_of(hint), want, hint)

    def test_unsupported_hints_fail_at_definition(self) -> None:
        for hint in [set, Dict[int, str], complex]:
            with self.assertRaises(TypeError, msg=hint):
                _schema.schema_of(hint)

    def test_kwargs_allow_unknown_fields(self) -> None:
        self.assertNotIn("additionalProperties", _schema.input_schema(kw))

    def test_description_is_the_first_paragraph(self) -> None:
        self.assertEqual(_schema.description_of(order), "Places an order.")


class Binding(unittest.TestCase):
    def setUp(self) -> None:
        self.params, self.var_kw = _schema.params_of(order)

    def bind(self, doc: Any) -> Dict[str, Any]:
        return _schema.bind(self.params, self.var_kw, doc)

    def test_good_input_binds_with_dataclasses(self) -> None:
        args = self.bind({"customer": "c", "lines": [{"sku": "x"}], "note": None})
        self.assertEqual(args["lines"], [Line("x", 1)])
        self.assertIsNone(args["note"])

    def test_bad_inputs_name_the_field(self) -> None:
        for doc, needle in [
            ([], "expected a JSON object"),
            ({"lines": []}, "missing field 'customer'"),
            ({"customer": "c", "lines": [], "extra": 1}, "unknown field 'extra'"),
            ({"customer": 1, "lines": []}, "field 'customer': expected a string, got integer"),
            ({"customer": "c", "lines": [{"sku": "x", "qty": "2"}]}, "field 'lines'[0].qty"),
            ({"customer": "c", "lines": [{"qty": 2}]}, "missing field 'sku'"),
            ({"customer": "c", "lines": [], "rush": 1}, "expected true or false"),
        ]:
            with self.assertRaises(_schema.InputError, msg=doc) as caught:
                self.bind(doc)
            self.assertIn(needle, str(caught.exception), doc)

    def test_bool_is_not_an_integer_and_literals_keep_their_type(self) -> None:
        with self.assertRaises(_schema.InputError):
            _schema.convert(int, True, "x")
        with self.assertRaises(_schema.InputError):
            _schema.convert(Literal[1], True, "x")
        self.assertEqual(_schema.convert(float, 3, "x"), 3.0)


class RunLogic(unittest.TestCase):
    def test_round_trip_and_errors(self) -> None:
        t = _Tool(order, "order", "Places an order.", _schema.input_schema(order))
        out = json.loads(t.run(json.dumps({"customer": "c", "lines": [{"sku": "a"}]})))
        self.assertEqual(out, {"customer": "c", "skus": ["a"], "note": None, "rush": False})
        for text, needle in [
            ("not json", "input is not valid JSON for order: "),
            ('{"lines": []}', "input is not valid JSON for order: missing field 'customer'"),
        ]:
            with self.assertRaises(ToolError) as caught:
                t.run(text)
            self.assertIn(needle, str(caught.exception))

    def test_exceptions_become_the_error_text(self) -> None:
        def boom(n: int) -> int:
            """Fails."""
            if n == 0:
                raise ToolError("n must not be 0")
            return 1 // (n - 1)

        t = _Tool(boom, "boom", "Fails.", _schema.input_schema(boom))
        with self.assertRaises(ToolError) as caught:
            t.run('{"n": 0}')
        self.assertEqual(str(caught.exception), "n must not be 0")
        with self.assertRaises(ToolError) as caught:
            t.run('{"n": 1}')
        self.assertEqual(str(caught.exception), "boom failed: ZeroDivisionError: integer division or modulo by zero")

    def test_unserializable_output_is_an_error(self) -> None:
        def bad() -> object:
            """Returns a set."""
            return {1, 2}

        t = _Tool(bad, "bad", "Returns a set.", _schema.input_schema(bad))
        with self.assertRaises(ToolError) as caught:
            t.run("{}")
        self.assertIn("could not be serialized as JSON", str(caught.exception))


class Urls(unittest.TestCase):
    def test_splits(self) -> None:
        for url, params, want in [
            ("https://api.weather.example/v1/current?city=Oslo", None, ("https", "api.weather.example", "/v1/current?city=Oslo")),
            ("http://127.0.0.1:18080", None, ("http", "127.0.0.1:18080", "/")),
            ("HTTP://[::1]:8080?x=1#frag", None, ("http", "[::1]:8080", "/?x=1")),
            ("http://h/a b/é?q=ä", None, ("http", "h", "/a%20b/%C3%A9?q=%C3%A4")),
            ("http://h/p", {"city": "São Paulo"}, ("http", "h", "/p?city=S%C3%A3o%20Paulo")),
            ("http://h/p?a=1", {"b": "x&y=z"}, ("http", "h", "/p?a=1&b=x%26y%3Dz")),
        ]:
            self.assertEqual(split_url(url, params), want, url)

    def test_refuses(self) -> None:
        for url in [
            "api.weather.example/v1",
            "/v1/current",
            "ftp://h/file",
            "file:///etc/passwd",
            "http:///path",
            "http://user:pw@h/",
            "http://@h/",
            "http://bücher.example/",
            "",
        ]:
            with self.assertRaises(InvalidRequest, msg=url):
                split_url(url)


if __name__ == "__main__":
    unittest.main()
