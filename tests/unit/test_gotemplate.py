"""Tests for the Go text/template re-implementation.

The DOCKER_* tables were produced by the real docker 28.2 CLI (Go 1.24's
text/template plus docker's template functions): each template was run with
``docker image inspect busybox --format T`` and only data-free templates were
kept, so the expected strings are Go's own output and error text.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli.gotemplate import (
    MISSING,
    GoStruct,
    Template,
    TemplateError,
    execute,
    go_json,
    go_sprint,
    render_items,
)

DOCKER_OUTPUTS = [
    ('{{"abc"}}', "abc"),
    (
        "{{1}}|{{-1}}|{{+2}}|{{1.5}}|{{1e3}}|{{0x10}}|{{0o17}}|{{017}}|{{0b101}}|{{1_000}}|{{'a'}}|{{'\\n'}}|{{'\\''}}|{{0x1p4}}|{{1.0}}|{{1e21}}|{{1e-5}}|{{0.0001}}|{{123456789.0}}|{{-0.0}}",
        "1|-1|2|1.5|1000|16|15|15|5|1000|97|10|39|16|1|1e+21|1e-05|0.0001|1.23456789e+08|-0",
    ),
    ("{{true}} {{false}}", "true false"),
    (
        '{{print 1 2}} {{print "a" "b"}} {{print 1 "a" 2}} {{print true false}} {{print 1.5 2}}',
        "1 2 ab 1a2 true false 1.5 2",
    ),
    ('{{println 1 2 "x"}}', "1 2 x\n"),
    (
        '{{printf "%d|%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%o|%#o|%b|%c|%q|%U" 42 42 42 42 42 42 255 255 255 8 8 5 65 65 65}}',
        "42|   42|42   |00042|+42| 42|ff|FF|0xff|10|010|101|A|'A'|U+0041",
    ),
    (
        '{{printf "%s|%10s|%-10s|%.2s|%q|%x|%X|%v" "hello" "hi" "hi" "hello" "a\\tb" "hi" "hi" "v"}}',
        'hello|        hi|hi        |he|"a\\tb"|6869|6869|v',
    ),
    (
        '{{printf "%f|%.2f|%8.3f|%e|%E|%g|%G|%.3g|%v|%+v|%+.1f" 3.14159 3.14159 3.14159 1234.5678 1234.5678 0.000012345 1e21 1234.5678 2.5 2.5 -2.25}}',
        "3.141590|3.14|   3.142|1.234568e+03|1.234568E+03|1.2345e-05|1E+21|1.23e+03|2.5|2.5|-2.2",
    ),
    ('{{printf "%t|%v|%5t|%d" true false true true}}', "true|false| true|%!d(bool=true)"),
    ('{{printf "%d %s %f %t" "x" 1 "y" 2}}', "%!d(string=x) %!s(int=1) %!f(string=y) %!t(int=2)"),
    ('{{printf "%v %d %s" nil nil nil}}', "<nil> %!d(<nil>) %!s(<nil>)"),
    (
        '{{printf "%"}}|{{printf "%d"}}|{{printf "a" 1 "b"}}|{{printf "%!"}}|{{printf "%%"}}|{{printf "%z" 3}}',
        "%!(NOVERB)|%!d(MISSING)|a%!(EXTRA int=1, string=b)|%!!(MISSING)|%|%!z(int=3)",
    ),
    (
        '{{printf "%v" (split "a,b,c" ",")}}|{{printf "%q" (split "a,b" ",")}}|{{printf "%d" (split "a" ",")}}|{{printf "%T" (split "a" ",")}}|{{printf "%T %T %T %T" 1 1.5 "s" true}}',
        '[a b c]|["a" "b"]|[%!d(string=a)]|[]string|int float64 string bool',
    ),
    ('{{printf "%6.2f|%-8.3e|%08.3f" 3.14159 1234.5 -3.5}}', "  3.14|1.234e+03|-003.500"),
    (
        '{{split "a,b,c" ","}}|{{split "abc" ""}}|{{split "" ","}}|{{len (split "" ",")}}|{{split "a,,b" ","}}',
        "[a b c]|[a b c]|[]|1|[a  b]",
    ),
    ('{{join (split "a,b,c" ",") "-"}}|{{join (split "x" ",") ", "}}', "a-b-c|x"),
    (
        '{{title "hello world"}}|{{title "HELLO"}}|{{title "a-b c_d e.f g\'h"}}|{{title "élan vital"}}|{{title ""}}',
        "Hello World|HELLO|A-B C_d E.F G'H|Élan Vital|",
    ),
    (
        '{{lower "HeLLo"}}|{{upper "hello"}}|{{upper "straße"}}|{{lower "ÀÉ"}}',
        "hello|HELLO|STRAßE|àé",
    ),
    ('{{pad "x" 2 3}}|{{pad "" 2 3}}|{{pad "abc" 0 0}}', "  x   ||abc"),
    (
        '{{truncate "abcdef" 3}}|{{truncate "abc" 5}}|{{truncate "abc" 3}}|{{truncate "abc" 0}}',
        "abc|abc|abc|",
    ),
    (
        '{{json "a<b>&c"}}|{{json 1.5}}|{{json 1e21}}|{{json 1e20}}|{{json 0.000001}}|{{json 0.0000001}}|{{json -1e-7}}|{{json 100.0}}|{{json true}}|{{json nil}}|{{json (split "a,b" ",")}}',
        '"a<b>&c"|1.5|1e+21|100000000000000000000|0.000001|1e-7|-1e-7|100|true|null|["a","b"]',
    ),
    (
        '{{json "\\u2028\\u2029\\u0000\\u001f\\u007f"}}|{{json "é😀"}}|{{json "a\\"b\\\\c/d"}}',
        '"\\u2028\\u2029\\u0000\\u001f\x7f"|"é😀"|"a\\"b\\\\c/d"',
    ),
    ('{{len "abc"}}|{{len "héllo"}}|{{len (split "a,b" ",")}}', "3|6|2"),
    ('{{index "abc" 0}}|{{index (split "a,b,c" ",") 2}}', "97|c"),
    (
        '{{slice "abcdef" 2}}|{{slice "abcdef" 1 3}}|{{slice (split "a,b,c,d" ",") 1 3}}|{{slice "abc"}}',
        "cdef|bc|[b c]|abc",
    ),
    (
        '{{eq 1 1}} {{eq 1 2}} {{eq "a" "a"}} {{eq 1 2 3 1}} {{eq true true}} {{eq 1.5 1.5}} {{ne "a" "b"}} {{ne 1 1}}',
        "true false true true true true true false",
    ),
    (
        '{{lt 1 2}} {{lt 2 1}} {{le 2 2}} {{gt 3 2}} {{ge 2 3}} {{lt "a" "b"}} {{lt 1.5 2.5}} {{gt "b" "a"}}',
        "true false true true false true true true",
    ),
    (
        '{{and 1 2 3}}|{{and 1 0 3}}|{{and "" 1}}|{{or 0 "" nil}}|{{or 0 "x"}}|{{not 1}}|{{not ""}}|{{not nil}}|{{and 1}}|{{or 0}}',
        "3|0||<no value>|x|false|true|true|1|0",
    ),
    (
        '{{if 1}}a{{end}}|{{if 0}}a{{else}}b{{end}}|{{if ""}}a{{else if "x"}}b{{else}}c{{end}}|{{if and 1 0}}x{{else}}y{{end}}',
        "a|b|b|y",
    ),
    (
        '{{with "x"}}[{{.}}]{{end}}|{{with ""}}[{{.}}]{{else}}none{{end}}|{{with $v := 5}}{{$v}}{{.}}{{end}}',
        "[x]|none|55",
    ),
    (
        '{{range split "a,b,c" ","}}<{{.}}>{{end}}|{{range $i, $e := split "a,b" ","}}{{$i}}{{$e}}{{end}}|{{range $e := split "x,y" ","}}{{$e}}{{end}}',
        "<a><b><c>|0a1b|xy",
    ),
    (
        "{{range 3}}{{.}}{{end}}|{{range $i := 3}}{{$i}}{{end}}|{{range 0}}x{{else}}empty{{end}}",
        "012|012|empty",
    ),
    (
        '{{range $i, $e := split "a,b,c,d" ","}}{{if eq $i 1}}{{continue}}{{end}}{{if eq $i 3}}{{break}}{{end}}{{$e}}{{end}}',
        "ac",
    ),
    ('{{$x := 1}}{{$x}}{{$x = "two"}}{{$x}}{{if true}}{{$x = 3}}{{end}}{{$x}}', "1two3"),
    (
        '{{"a" | printf "%s-%s" "b"}}|{{"x" | upper | printf "[%s]"}}|{{(split "a,b" ",") | len}}',
        "b-a|[X]|2",
    ),
    ('{{(printf "%s" "abc") | len}}|{{len (printf "%d" 12345)}}', "3|5"),
    ('a  {{- "b" -}}  c|a {{"b"}} c|{{- "x" }}  ', "abc|a b c|x  "),
    (" {{- 3 -}} ", "3"),
    ("{{/* comment */}}x{{- /* c2 */ -}} y", "xy"),
    ('line */}}{{"b"}}', "line */}}b"),
    (
        '{{html "<a href=\\"x\\">&\'"}}|{{urlquery "a b/c?d=e&f"}}|{{js "a\'b\\"c<d>\\\\"}}',
        "&lt;a href=&#34;x&#34;&gt;&amp;&#39;|a+b%2Fc%3Fd%3De%26f|a\\'b\\\"c\\u003Cd\\u003E\\\\",
    ),
    ('{{print (index (split "a,b" ",") 0)}}|{{print "x" 1 2 "y"}}', "a|x1 2y"),
    ("{{if eq 1 1 2}}t{{end}}{{if ne 1 2}}u{{end}}", "tu"),
    ('{{printf "%5.1v|%-6v|%6v" 3.14159 "ab" true}}', "    3|ab    |  true"),
    (
        '{{printf "%08.3f|%+08d|%-08d|%x|%X" 3.14159 42 42 -255 -255}}',
        "0003.142|+0000042|42      |-ff|-FF",
    ),
    ('{{printf "%3c|%-3c|%q|%q" 65 66 10 39}}', "  A|B  |'\\n'|'\\''"),
    (
        '{{printf "%v" 1e100}}|{{printf "%v" 1.7976931348623157e308}}|{{printf "%v" 5e-324}}|{{printf "%g" 100000.0}}|{{printf "%g" 1000000.0}}',
        "1e+100|1.7976931348623157e+308|5e-324|100000|1e+06",
    ),
    ('{{printf "%.0f|%.0f|%.0f|%.1f" 0.5 1.5 2.5 0.25}}', "0|2|2|0.2"),
    (
        '{{printf "%s" 1.5}}|{{printf "%d" 1.5}}|{{printf "%s" true}}|{{printf "%q" 1.5}}',
        "%!s(float64=1.5)|%!d(float64=1.5)|%!s(bool=true)|%!q(float64=1.5)",
    ),
    ('{{eq "a" nil}}', "false"),
    ("{{eq nil 1}}", "false"),
    ('{{block "a" 1}}[{{.}}]{{end}}', "[1]"),
    ("{{with 1}}{{else with 0}}a{{else}}b{{end}}", ""),
    ("{{1 -}}", "1"),
    ("{{- 1}}", "1"),
    ("{{-1 -}}", "-1"),
    (
        '{{range $i, $e := split "a,b" ","}}{{range $j, $f := split "x,y" ","}}{{$i}}{{$j}}{{$e}}{{$f}} {{end}}{{end}}',
        "00ax 01ay 10bx 11by ",
    ),
    ('{{$x := "outer"}}{{range split "a" ","}}{{$x := "inner"}}{{$x}}{{end}}{{$x}}', "innerouter"),
    ('{{$x := "outer"}}{{range split "a" ","}}{{$x = "inner"}}{{$x}}{{end}}{{$x}}', "innerinner"),
    ("{{if $x := 0}}a{{$x}}{{else if $y := 2}}b{{$x}}{{$y}}{{else}}c{{end}}", "b02"),
    ('{{with $x := "q"}}{{$x}}{{else with $y := 3}}{{$y}}{{end}}', "q"),
    ('{{print 1 (print 2 3) (printf "%d" 4)}}', "12 34"),
    ('{{(print 1 2 | printf "%s!")}}', "1 2!"),
    ('{{"x" | printf "%s%s" "y" | printf "%s|%s" "z"}}', "z|yx"),
    ('{{range split "a,b" ","}}{{.}}{{if eq . "a"}}-{{end}}{{end}}', "a-b"),
    ('{{index (split "a.b.c" ".") 1 | upper}}', "B"),
    ('{{range $k := split "c,a,b" ","}}{{$k}}{{end}}', "cab"),
    ('{{printf "%d%%" 50}}', "50%"),
    (
        '{{"\\"quoted\\""}}|{{"tab\\there"}}|{{`raw\\t`}}|{{"\\x41\\101\\u0042\\U00000043"}}',
        '"quoted"|tab\there|raw\\t|AABC',
    ),
    ('{{len "\\xff\\xfe"}}', "2"),
    ('{{slice "héllo" 1 3}}', "é"),
    ('{{print nil}}|{{print}}|{{println}}|{{printf ""}}', "<nil>||\n|"),
    ("{{if .}}y{{else}}n{{end}}", "y"),
    (
        '{{eq "" ""}}|{{eq 0 0}}|{{lt -1 0}}|{{lt "B" "a"}}|{{le 1.5 1.5}}|{{ge "b" "b"}}',
        "true|true|true|true|true|true",
    ),
    ('{{and 0 (index "x" 5)}}|{{or 1 (index "x" 5)}}', "0|1"),
    (
        "{{1.5e3}}|{{1e6}}|{{1.0e6}}|{{2.5e-5}}|{{12345678.9}}|{{0.1}}|{{1e+2}}|{{100000.5}}",
        "1500|1e+06|1e+06|2.5e-05|1.23456789e+07|0.1|100|100000.5",
    ),
    ('{{printf "%v|%v|%v" 1e15 1.5e15 123e4}}', "1e+15|1.5e+15|1.23e+06"),
    (
        "{{json 123456789012345678}}|{{json 1.5e300}}|{{json 12345678.9}}|{{json 0.1}}|{{json 1e-6}}|{{json 9.99e-7}}",
        "123456789012345678|1.5e+300|12345678.9|0.1|0.000001|9.99e-7",
    ),
    ("{{ 1 }}{{\t2\t}}{{\n3\n}}", "123"),
    ('a\n{{- "b" }}\n  {{- "c" -}}\n    d\n{{- /* x */ -}}\ne', "abcde"),
]

DOCKER_ERRORS = [
    ('{{"a"}}{{/* multi', "template: :1: unclosed comment"),
    ("{{.Foo", "template: :1: unclosed action"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{if 1}}x", "template: :1: unexpected EOF"),
    ("{{if 1}}x{{else}}y{{else}}z{{end}}", "template: :1: expected end; found {{else}}"),
    ("{{range 1}}", "template: :1: unexpected EOF"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{|}}", 'template: :1: unexpected "|" in command'),
    ("{{foo}}", 'template: :1: function "foo" not defined'),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{`abc}}", "template: :1: unterminated raw quoted string"),
    ("{{'ab'}}", "template: :1: malformed character constant: 'ab'"),
    ("{{''}}", "template: :1: invalid syntax"),
    ("{{ # }}", 'template: :1: unexpected "#" in command'),
    ("{{ @ }}", 'template: :1: unexpected "@" in command'),
    ("{{range}}", "template: :1: missing value for range"),
    ("{{if}}", "template: :1: missing value for if"),
    ("{{with}}", "template: :1: missing value for with"),
    ("{{(1}}", "template: :1: unclosed left paren"),
    ("{{1)}}", "template: :1: unexpected right paren"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ("{{$x.Foo}}", 'template: :1: undefined variable "$x"'),
    ("{{1x}}", 'template: :1: bad number syntax: "1x"'),
    ("{{0x}}", 'template: :1: illegal number syntax: "0x"'),
    ("{{1.2.3}}", 'template: :1: unexpected ".3" in operand'),
    ("{{-}}", 'template: :1: illegal number syntax: "-"'),
    ("{{= 1}}", 'template: :1: unexpected "=" in command'),
    ("{{.X := 1}}", 'template: :1: unexpected ":=" in operand'),
    ("{{$x := 1 := 2}}", 'template: :1: unexpected ":=" in operand'),
    ("{{$x, $y := 1}}", "template: :1: too many declarations in command"),
    ("{{range $x, $y, $z := 1}}{{end}}", "template: :1: too many declarations in range"),
    ("{{range $x, 1}}{{end}}", "template: :1: range can only initialize variables"),
    ('{{"a".x}}', 'template: :1: unexpected . after term "\\"a\\""'),
    ("{{1.x}}", 'template: :1: bad number syntax: "1.x"'),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{continue}}", "template: :1: {{continue}} outside {{range}}"),
    ("{{range 1}}{{break 1}}{{end}}", 'template: :1: unexpected "1" in {{break}}'),
    ('{{"a" | 1}}', "template: :1: non executable command in pipeline stage 2"),
    ('{{1 | "b"}}', "template: :1: non executable command in pipeline stage 2"),
    ("{{.X.}}", "template: :1: unexpected <.> in operand"),
    ("{{.X#}}", "template: :1: bad character U+0023 '#'"),
    ("{{abc#}}", "template: :1: bad character U+0023 '#'"),
    ("{{$x#}}", "template: :1: bad character U+0023 '#'"),
    (
        '{{"a" "b"}}',
        'template: :1:2: executing "" at <"a">: can\'t give argument to non-function "a"',
    ),
    ("{{1 2}}", 'template: :1:2: executing "" at <1>: can\'t give argument to non-function 1'),
    ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
    (
        "{{upper}}",
        'template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0',
    ),
    ("{{upper 5}}", 'template: :1:8: executing "" at <5>: expected string; found 5'),
    (
        "{{upper 1 2}}",
        'template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 2',
    ),
    ("{{upper nil}}", 'template: :1:8: executing "" at <nil>: cannot assign nil to string'),
    ("{{upper true}}", 'template: :1:8: executing "" at <true>: expected string; found true'),
    ("{{upper 1.5}}", 'template: :1:8: executing "" at <1.5>: expected string; found 1.5'),
    ('{{pad "x" 1.5 2}}', 'template: :1:10: executing "" at <1.5>: expected integer; found 1.5'),
    ('{{pad "x" "1" 2}}', 'template: :1:10: executing "" at <"1">: expected integer; found "1"'),
    ('{{pad "x" true 2}}', 'template: :1:10: executing "" at <true>: expected integer; found true'),
    (
        '{{index "abc" 5}}',
        'template: :1:2: executing "" at <index "abc" 5>: error calling index: index out of range: 5',
    ),
    (
        '{{index "abc" 3}}',
        'template: :1:2: executing "" at <index "abc" 3>: error calling index: reflect: string index out of range',
    ),
    (
        '{{index "abc" -1}}',
        'template: :1:2: executing "" at <index "abc" -1>: error calling index: index out of range: -1',
    ),
    (
        '{{index "abc" "x"}}',
        'template: :1:2: executing "" at <index "abc" "x">: error calling index: cannot index slice/array with type string',
    ),
    (
        '{{index "abc" nil}}',
        'template: :1:2: executing "" at <index "abc" nil>: error calling index: cannot index slice/array with nil',
    ),
    (
        "{{index 5 1}}",
        'template: :1:2: executing "" at <index 5 1>: error calling index: can\'t index item of type int',
    ),
    (
        "{{index nil 1}}",
        'template: :1:2: executing "" at <index nil 1>: error calling index: index of untyped nil',
    ),
    ("{{len 3}}", 'template: :1:2: executing "" at <len 3>: error calling len: len of type int'),
    (
        "{{len nil}}",
        'template: :1:2: executing "" at <len nil>: error calling len: reflect: call of reflect.Value.Type on zero Value',
    ),
    (
        "{{len 1.5}}",
        'template: :1:2: executing "" at <len 1.5>: error calling len: len of type float64',
    ),
    (
        "{{len true}}",
        'template: :1:2: executing "" at <len true>: error calling len: len of type bool',
    ),
    (
        '{{slice "abc" 1 2 3}}',
        'template: :1:2: executing "" at <slice "abc" 1 2 3>: error calling slice: cannot 3-index slice a string',
    ),
    (
        '{{slice "abc" 2 1}}',
        'template: :1:2: executing "" at <slice "abc" 2 1>: error calling slice: invalid slice index: 2 > 1',
    ),
    (
        '{{slice "abc" 5}}',
        'template: :1:2: executing "" at <slice "abc" 5>: error calling slice: index out of range: 5',
    ),
    (
        "{{slice 3 1}}",
        'template: :1:2: executing "" at <slice 3 1>: error calling slice: can\'t slice item of type int',
    ),
    (
        '{{slice (split "a,b" ",") 1 2 3 4}}',
        'template: :1:2: executing "" at <slice (split "a,b" ",") 1 2 3 4>: error calling slice: too many slice indexes: 4',
    ),
    (
        '{{truncate "abc" -1}}',
        'template: :1:2: executing "" at <truncate "abc" -1>: error calling truncate: runtime error: slice bounds out of range [:-1]',
    ),
    (
        '{{pad "x" -1 0}}',
        'template: :1:2: executing "" at <pad "x" -1 0>: error calling pad: strings: negative Repeat count',
    ),
    (
        "{{and}}",
        'template: :1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0',
    ),
    (
        "{{or}}",
        'template: :1:2: executing "" at <or>: wrong number of args for or: want at least 1 got 0',
    ),
    (
        "{{not}}",
        'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 0',
    ),
    (
        "{{not 1 2}}",
        'template: :1:2: executing "" at <not>: wrong number of args for not: want 1 got 2',
    ),
    (
        "{{eq 1}}",
        'template: :1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison',
    ),
    (
        "{{eq}}",
        'template: :1:2: executing "" at <eq>: wrong number of args for eq: want at least 1 got 0',
    ),
    (
        '{{eq 1 "a"}}',
        'template: :1:2: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison',
    ),
    (
        "{{eq 1 1.0}}",
        'template: :1:2: executing "" at <eq 1 1.0>: error calling eq: incompatible types for comparison',
    ),
    (
        '{{eq (split "a" ",") (split "a" ",")}}',
        'template: :1:2: executing "" at <eq (split "a" ",") (split "a" ",")>: error calling eq: non-comparable type [a]: []string',
    ),
    (
        "{{lt true false}}",
        'template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison',
    ),
    (
        "{{lt 1 2.5}}",
        'template: :1:2: executing "" at <lt 1 2.5>: error calling lt: incompatible types for comparison',
    ),
    (
        "{{lt nil 1}}",
        'template: :1:2: executing "" at <lt nil 1>: error calling lt: invalid type for comparison',
    ),
    (
        '{{lt "a" 1}}',
        'template: :1:2: executing "" at <lt "a" 1>: error calling lt: incompatible types for comparison',
    ),
    (
        '{{lt (split "a" ",") 1}}',
        'template: :1:2: executing "" at <lt (split "a" ",") 1>: error calling lt: invalid type for comparison',
    ),
    ("{{lt 1}}", 'template: :1:2: executing "" at <lt>: wrong number of args for lt: want 2 got 1'),
    ("{{ne 1}}", 'template: :1:2: executing "" at <ne>: wrong number of args for ne: want 2 got 1'),
    (
        '{{range "ab"}}{{end}}',
        'template: :1:8: executing "" at <"ab">: range can\'t iterate over ab',
    ),
    (
        "{{range 1.5}}{{end}}",
        'template: :1:8: executing "" at <1.5>: range can\'t iterate over 1.5',
    ),
    (
        "{{range true}}{{end}}",
        'template: :1:8: executing "" at <true>: range can\'t iterate over true',
    ),
    (
        "{{range $i, $v := 3}}{{end}}",
        'template: :1:18: executing "" at <3>: can\'t use 3 to iterate over more than one variable',
    ),
    (
        '{{template "x"}}',
        'template: :1:11: executing "" at <{{template "x"}}>: template "x" not defined',
    ),
    ("{{printf 5}}", 'template: :1:9: executing "" at <5>: expected string; found 5'),
    (
        "{{printf}}",
        'template: :1:2: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0',
    ),
    (
        "{{json}}",
        'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 0',
    ),
    (
        "{{json 1 2}}",
        'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 2',
    ),
    (
        '{{split "a"}}',
        'template: :1:2: executing "" at <split>: wrong number of args for split: want 2 got 1',
    ),
    ("{{title 5}}", 'template: :1:8: executing "" at <5>: expected string; found 5'),
    ("{{(1).X}}", 'template: :1:3: executing "" at <1>: can\'t evaluate field X in type int'),
    (
        '{{("a").X}}',
        'template: :1:3: executing "" at <"a">: can\'t evaluate field X in type string',
    ),
    (
        '{{(split "a,b" ",").X}}',
        'template: :1:15: executing "" at <",">: can\'t evaluate field X in type []string',
    ),
    (
        '{{define "a"}}x{{end}}{{template "b"}}',
        'template: :1:33: executing "" at <{{template "b"}}>: template "b" not defined',
    ),
    ('{{define "a"}}x', "template: :1: unexpected EOF"),
    (
        '{{printf "%d" (index "abc" 9)}}',
        'template: :1:15: executing "" at <index "abc" 9>: error calling index: index out of range: 9',
    ),
    ("{{if}}x{{end}}", "template: :1: missing value for if"),
    ("{{range 2}}{{else}}x{{else}}y{{end}}", "template: :1: expected end; found {{else}}"),
    ("x{{", "template: :1: unclosed action"),
    (
        '{{json (printf "%v" 1) (1)}}',
        'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 2',
    ),
    ('{{.X "a"}}', 'template: :1:2: executing "" at <.X>: X is not a method but has arguments'),
    (
        "{{$x := 1}}{{$x 2}}",
        'template: :1:13: executing "" at <$x>: can\'t give argument to non-function $x',
    ),
    ("{{. 1}}", 'template: :1:2: executing "" at <.>: can\'t give argument to non-function .'),
    (
        'a\n{{.Foo\n{{"x"}}\n{{if 1}}\n{{end}}{{end}}\nx\n{{foo}}\n{{/* c */}}\n{{ bar }}\n{{range 1}}{{end}}\n{{index "a" 5}}\n{{ "a" }}\n   {{ upper 5 }}\n{{ $x := 1 }}{{ $x := }}\n{{ 1 |\n upper }}',
        'template: :3: unexpected "{" in operand',
    ),
    ('a\n\n{{"x"}}{{.Foo', "template: :3: unclosed action"),
    ('x\n{{"x"}}\n{{foo}}', 'template: :3: function "foo" not defined'),
    (
        'x\ny\n{{index "a" 5}}',
        'template: :3:2: executing "" at <index "a" 5>: error calling index: index out of range: 5',
    ),
    ("\n\n   {{ upper 5 }}", 'template: :3:12: executing "" at <5>: expected string; found 5'),
    (
        "x\n{{ 1 |\n upper }}",
        'template: :3:1: executing "" at <upper>: wrong type for value; expected string; got int',
    ),
    ("{{ $x := 1 }}\n{{ $x := }}", "template: :2: missing value for command"),
    ("{{if 1}}\n\n", "template: :3: unexpected EOF"),
    ("{{end}}\n{{end}}", "template: :1: unexpected {{end}}"),
    ("é{{upper 5}}", 'template: :1:10: executing "" at <5>: expected string; found 5'),
    ('\n{{range 1}}{{end}}\n{{"a"|1}}', "template: :3: non executable command in pipeline stage 2"),
]

# `docker images --format json` items and docker 28.2's output for each --format.
IMAGES = [
    {
        "Containers": "N/A",
        "CreatedAt": "2026-11-22 09:50:27 +0000 UTC",
        "CreatedSince": "16 minutes ago",
        "Digest": "<none>",
        "ID": "210a61b3fd6a",
        "Repository": "127.0.0.1:5000/big",
        "SharedSize": "N/A",
        "Size": "212MB",
        "Tag": "latest",
        "UniqueSize": "N/A",
        "VirtualSize": "211.7MB",
    },
    {
        "Containers": "N/A",
        "CreatedAt": "2026-11-22 09:50:23 +0000 UTC",
        "CreatedSince": "16 minutes ago",
        "Digest": "<none>",
        "ID": "4b9671859f20",
        "Repository": "peers-hi",
        "SharedSize": "N/A",
        "Size": "1.99MB",
        "Tag": "latest",
        "UniqueSize": "N/A",
        "VirtualSize": "1.986MB",
    },
    {
        "Containers": "N/A",
        "CreatedAt": "2026-11-22 09:50:22 +0000 UTC",
        "CreatedSince": "16 minutes ago",
        "Digest": "<none>",
        "ID": "b08c64627ad3",
        "Repository": "busybox",
        "SharedSize": "N/A",
        "Size": "1.99MB",
        "Tag": "latest",
        "UniqueSize": "N/A",
        "VirtualSize": "1.986MB",
    },
]

IMAGE_FORMATS = [
    (
        "",
        "REPOSITORY           TAG       IMAGE ID       CREATED          SIZE\n127.0.0.1:5000/big   latest    210a61b3fd6a   16 minutes ago   212MB\npeers-hi             latest    4b9671859f20   16 minutes ago   1.99MB\nbusybox              latest    b08c64627ad3   16 minutes ago   1.99MB\n",
    ),
    (
        "table",
        "REPOSITORY           TAG       IMAGE ID       CREATED          SIZE\n127.0.0.1:5000/big   latest    210a61b3fd6a   16 minutes ago   212MB\npeers-hi             latest    4b9671859f20   16 minutes ago   1.99MB\nbusybox              latest    b08c64627ad3   16 minutes ago   1.99MB\n",
    ),
    (
        "json",
        '{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:27 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"210a61b3fd6a","Repository":"127.0.0.1:5000/big","SharedSize":"N/A","Size":"212MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"211.7MB"}\n{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:23 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"4b9671859f20","Repository":"peers-hi","SharedSize":"N/A","Size":"1.99MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.986MB"}\n{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:22 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"b08c64627ad3","Repository":"busybox","SharedSize":"N/A","Size":"1.99MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.986MB"}\n',
    ),
    (
        "{{json .}}",
        '{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:27 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"210a61b3fd6a","Repository":"127.0.0.1:5000/big","SharedSize":"N/A","Size":"212MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"211.7MB"}\n{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:23 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"4b9671859f20","Repository":"peers-hi","SharedSize":"N/A","Size":"1.99MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.986MB"}\n{"Containers":"N/A","CreatedAt":"2026-11-22 09:50:22 +0000 UTC","CreatedSince":"16 minutes ago","Digest":"\\u003cnone\\u003e","ID":"b08c64627ad3","Repository":"busybox","SharedSize":"N/A","Size":"1.99MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.986MB"}\n',
    ),
    ("{{.ID}}", "210a61b3fd6a\n4b9671859f20\nb08c64627ad3\n"),
    (
        "table {{.ID}}\t{{.Repository}}",
        "IMAGE ID       REPOSITORY\n210a61b3fd6a   127.0.0.1:5000/big\n4b9671859f20   peers-hi\nb08c64627ad3   busybox\n",
    ),
    (
        "table {{.ID}}\\t{{.Repository}}\\t{{.Digest}}",
        "IMAGE ID       REPOSITORY           DIGEST\n210a61b3fd6a   127.0.0.1:5000/big   <none>\n4b9671859f20   peers-hi             <none>\nb08c64627ad3   busybox              <none>\n",
    ),
    (
        "  {{.ID}}\\t{{.Tag}}\\n",
        "210a61b3fd6a\tlatest\n\n4b9671859f20\tlatest\n\nb08c64627ad3\tlatest\n\n",
    ),
    (
        'table {{.Repository | upper}}\t{{json .Tag}}\t{{split .ID "a"}}\t{{.Size | lower}}|{{truncate .Tag 2}}|{{title .Tag}}|{{join (split .ID "a") ","}}',
        'REPOSITORY           TAG        IMAGE ID         SIZE|TAG|TAG|IMAGE ID\n127.0.0.1:5000/BIG   "latest"   [210 61b3fd6 ]   212mb|la|Latest|210,61b3fd6,\nPEERS-HI             "latest"   [4b9671859f20]   1.99mb|la|Latest|4b9671859f20\nBUSYBOX              "latest"   [b08c64627 d3]   1.99mb|la|Latest|b08c64627,d3\n',
    ),
    (
        "table {{.ID}}\t{{.Foo}}",
        'ERR template parsing error: template: :1:10: executing "" at <.Foo>: can\'t evaluate field Foo in type *formatter.imageContext',
    ),
    (
        "{{.Foo}}",
        'ERR template parsing error: template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type *formatter.imageContext',
    ),
    (
        "table {{pad .ID 2 2}}\t{{.Tag}}",
        "  IMAGE ID         TAG\n  210a61b3fd6a     latest\n  4b9671859f20     latest\n  b08c64627ad3     latest\n",
    ),
    (
        'table {{printf "%-20s" .ID}}|{{.Tag}}',
        "IMAGE ID            |TAG\n210a61b3fd6a        |latest\n4b9671859f20        |latest\nb08c64627ad3        |latest\n",
    ),
    (
        "{{.ID}} {{.VirtualSize}}",
        "210a61b3fd6a 211.7MB\n4b9671859f20 1.986MB\nb08c64627ad3 1.986MB\n",
    ),
    (
        "table {{.Tag}}\t{{.Repository}}\t{{.ID}}\t",
        "TAG       REPOSITORY           IMAGE ID       \nlatest    127.0.0.1:5000/big   210a61b3fd6a   \nlatest    peers-hi             4b9671859f20   \nlatest    busybox              b08c64627ad3   \n",
    ),
    ("table {{.ID", "ERR template parsing error: template: :1: unclosed action"),
    ("tablex {{.ID}}", "x IMAGE ID\nx 210a61b3fd6a\nx 4b9671859f20\nx b08c64627ad3\n"),
    (
        '{{.Label "x"}}',
        'ERR template parsing error: template: :1:2: executing "" at <.Label>: can\'t evaluate field Label in type *formatter.imageContext',
    ),
    (
        "table {{.Size}}\t{{.Repository}}",
        "SIZE      REPOSITORY\n212MB     127.0.0.1:5000/big\n1.99MB    peers-hi\n1.99MB    busybox\n",
    ),
]
EMPTY_TABLE = "IMAGE ID   <no value>   SIZE\n"

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
IMAGE_TABLE = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
DATA = {"k": 1}


@pytest.mark.parametrize(("template", "expected"), DOCKER_OUTPUTS)
def test_matches_docker_output(template, expected):
    assert execute(template, DATA) == expected


@pytest.mark.parametrize(("template", "expected"), DOCKER_ERRORS)
def test_matches_docker_error(template, expected):
    with pytest.raises(TemplateError) as exc:
        execute(template, DATA)
    assert str(exc.value) == expected


@pytest.mark.parametrize(("fmt", "expected"), IMAGE_FORMATS)
def test_render_items_matches_docker_images(fmt, expected):
    def run():
        return render_items(
            fmt,
            IMAGES,
            IMAGE_HEADERS,
            default_table=IMAGE_TABLE,
            type_name="*formatter.imageContext",
        )

    if expected.startswith("ERR "):
        with pytest.raises(TemplateError) as exc:
            run()
        assert "ERR " + str(exc.value) == expected
    else:
        assert run() == expected


def test_render_items_no_rows_prints_header_only():
    # Header fields missing from the header map print Go's "<no value>".
    fmt = "table {{.ID}}\t{{.Foo}}\t{{.Size}}"
    out = render_items(fmt, [], IMAGE_HEADERS, default_table=IMAGE_TABLE)
    assert out == EMPTY_TABLE == "IMAGE ID   <no value>   SIZE\n"
    assert render_items("{{.ID}}", [], IMAGE_HEADERS, default_table=IMAGE_TABLE) == ""


def test_render_items_plain_maps_print_no_value():
    out = render_items("{{.ID}}|{{.Nope}}", [{"ID": "x"}], {}, default_table="table {{.ID}}")
    assert out == "x|<no value>\n"


def test_render_items_header_errors_keep_partial_header():
    # docker ignores errors while rendering the header row.
    items = [{"ID": "abc", "Label": lambda key: f"L[{key}]"}]
    out = render_items(
        'table {{.ID}}\t{{.Label "x"}}', items, {"ID": "ID"}, default_table="", type_name="*T"
    )
    # The header stops after "ID\t", so its empty last column is still padded.
    assert out == "ID        \nabc       L[x]\n"


def test_render_json_sorts_and_escapes_but_json_func_does_not():
    items = [{"b": "<x>", "a": 1}]
    assert render_items("json", items, {}, default_table="") == '{"a":1,"b":"\\u003cx\\u003e"}\n'
    assert render_items("{{json .b}}", items, {}, default_table="") == '"<x>"\n'


DATA_CASES = [
    ("{{.A}}", {"A": 1}, "1"),
    ("{{.A.B}}", {"A": {"B": "x"}}, "x"),
    ("{{.Missing}}", {}, "<no value>"),
    ("{{.Missing.Deeper}}", {}, "<no value>"),
    ("{{.Null}}", {"Null": None}, "<no value>"),
    ("{{.L}}", {"L": [1, "a", None, 1.5, True]}, "[1 a <nil> 1.5 true]"),
    ("{{.M}}", {"M": {"b": 2, "a": [1]}}, "map[a:[1] b:2]"),
    ("{{.F}}", {"F": 1234567.0}, "1.234567e+06"),
    ("{{.F}}", {"F": 123456.0}, "123456"),
    ("{{json .}}", {"b": [1, 2.0, None], "a": "<&>"}, '{"b":[1,2,null],"a":"<&>"}'),
    ("{{json .M}}", {"M": {}}, "{}"),
    ("{{range $k, $v := .M}}{{$k}}={{$v}};{{end}}", {"M": {"b": 2, "a": 1}}, "a=1;b=2;"),
    ("{{range .L}}{{.}}{{else}}empty{{end}}", {"L": []}, "empty"),
    ("{{range .Missing}}x{{else}}none{{end}}", {}, "none"),
    ('{{index .M "k"}}|{{index .M "z"}}|', {"M": {"k": "v"}}, "v||"),
    ('{{index .M "z"}}', {"M": {"k": 1}}, "<no value>"),
    ("{{index .L 1}}", {"L": ["a", "b"]}, "b"),
    ("{{len .L}} {{len .M}}", {"L": [1, 2], "M": {"a": 1}}, "2 1"),
    ("{{if .L}}y{{else}}n{{end}}", {"L": []}, "n"),
    ("{{with .S}}{{.}}{{end}}", {"S": "v"}, "v"),
    ("{{$.A}}{{range .L}}{{$.A}}{{end}}", {"A": "a", "L": [1, 2]}, "aaa"),
    ("{{.A | upper}}", {"A": "x"}, "X"),
    ('{{join .L ", "}}', {"L": ["a", 1, None]}, "a, 1, <nil>"),
    ('{{join .M ","}}', {"M": {"x": "b", "y": "a"}}, "a,b"),
    ('{{join .Missing ","}}', {}, ""),
    ("{{eq .A .B}}", {"A": None, "B": None}, "true"),
    ('{{eq .A "x"}}', {"A": None}, "false"),
    ('{{.Label "k"}}', GoStruct({"Label": lambda k: k.upper()}, type_name="*C"), "K"),
]


@pytest.mark.parametrize(("template", "data", "expected"), DATA_CASES)
def test_data(template, data, expected):
    assert execute(template, data) == expected


DATA_ERRORS = [
    ("{{.A.B}}", {"A": None}, 'template: :1:4: executing "" at <.A.B>: '),
    ("{{.A.B}}", {"A": "s"}, "can't evaluate field B in type string"),
    ("{{.A.B}}", {"A": [1]}, "can't evaluate field B in type []interface {}"),
    (
        "{{.X}}",
        GoStruct({}, type_name="*formatter.imageContext"),
        "in type *formatter.imageContext",
    ),
    ('{{.A "x"}}', {"A": 1}, "A is not a method but has arguments"),
    ('{{.A "x"}}', GoStruct({"A": 1}, type_name="T"), "A has arguments but cannot be invoked"),
    ("{{upper .A}}", {"A": 1}, "wrong type for value; expected string; got int"),
    ("{{upper .A}}", {"A": None}, "wrong type for value; expected string; got interface {}"),
    ("{{.A | upper}}", {}, "invalid value; expected string"),
    ("{{range .A}}{{end}}", {"A": "str"}, "range can't iterate over str"),
    ("{{json .F}}", {"F": float("nan")}, "error calling json: json: unsupported value: NaN"),
]


@pytest.mark.parametrize(("template", "data", "message"), DATA_ERRORS)
def test_data_errors(template, data, message):
    with pytest.raises(TemplateError) as exc:
        execute(template, data)
    assert message in str(exc.value)


def test_missingkey_error_matches_docker_inspect_fallback():
    # docker inspect re-runs failed templates on raw JSON with missingkey=error.
    with pytest.raises(TemplateError) as exc:
        execute("{{.X | }}", {}, missingkey="error")
    assert str(exc.value) == 'template: :1:2: executing "" at <.X>: map has no entry for key "X"'
    with pytest.raises(TemplateError) as exc:
        execute("{{$.X.Y}}", {}, missingkey="error")
    assert str(exc.value) == 'template: :1:3: executing "" at <$.X.Y>: map has no entry for key "X"'


def test_error_positions_count_bytes_and_lines():
    with pytest.raises(TemplateError) as exc:
        execute("é\n  {{upper 5}}", {})
    assert str(exc.value).startswith('template: :2:10: executing "" at <5>')


def test_partial_output_is_kept_on_error():
    with pytest.raises(TemplateError) as exc:
        Template("ab{{upper 5}}").execute({})
    assert exc.value.partial == "ab"


def test_custom_functions_and_header_override():
    tmpl = Template("{{shout .A}}", funcs={"shout": lambda s: s + "!"})
    assert tmpl.execute({"A": "hi"}) == "hi!"
    assert Template("{{json .A}}").execute({"A": "H"}, funcs={"json": str.lower}) == "h"


def test_go_json_and_sprint_helpers():
    assert go_json({"a": [1e21, 1e-7, 0.5, -0.0]}) == '{"a":[1e+21,1e-7,0.5,-0]}'
    assert go_json("\u2028<") == '"\\u2028<"'
    assert go_json("<", escape_html=True) == '"\\u003c"'
    assert go_json(MISSING) == "null"
    assert go_sprint(1, 2, "a", 3, "b", "c", 4, 5) == "1 2a3bc4 5"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_json_round_trips_through_python_json(value):
    # Go's encoding (with or without HTML escaping) is valid JSON for the same value.
    assert json.loads(go_json(value)) == value
    assert json.loads(go_json(value, escape_html=True)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_formats_round_trip(value):
    assert float(go_json(value)) == value
    assert float(execute("{{.}}", value)) == value


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30))
def test_text_without_actions_is_verbatim(text):
    assert execute(text, None) == text
