"""kernel_conformance.py — the Jupyter kernel conformance suite (Debian's python3-jupyter-kernel-test,
`jupyter_kernel_test.KernelTests`) run against dsv3-kernel: kernel_info, stdout and stderr streams,
completion, is_complete, errors, execute_result, display_data, history and inspect, each with
dsv3's Lua. Run by tests/test_kernel_conformance.sh with JUPYTER_PATH pointing at a kernelspec
that `dsv3 kernel install --prefix` wrote."""
import unittest

import jupyter_kernel_test


class Dsv3KernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "dsv3"
    language_name = "lua"
    file_extension = ".lua"
    code_hello_world = 'print("hello, world")'
    code_stderr = 'io.stderr:write("oops\\n")'
    completion_samples = [{"text": "pri", "matches": {"print"}}]
    complete_code_samples = ["1 + 1", "x = 1", "for i = 1, 2 do print(i) end"]
    incomplete_code_samples = ["function f()", "for i = 1, 2 do"]
    invalid_code_samples = ["x = = 1"]
    code_generate_error = 'error("boom")'
    code_execute_result = [{"code": "6 * 7", "result": "42"}, {"code": "x = 1\nx + 1", "result": "2"}]
    code_display_data = [{"code": 'display("shown")', "mime": "text/plain"}]
    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "6 * *"
    code_inspect_sample = "print"


if __name__ == "__main__":
    unittest.main(verbosity=2)
