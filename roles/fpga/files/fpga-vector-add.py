#!/usr/bin/python3
"""Add two vectors in an OpenCL kernel on the node's FPGA (or the emulated device) and compare
with numpy: prints one JSON line with the device, the size and whether the result is right."""

import json
import sys

import numpy as np
import pyopencl as cl

KERNEL = """
__kernel void add(__global const float *a, __global const float *b, __global float *out) {
    int i = get_global_id(0);
    out[i] = a[i] + b[i];
}
"""


def main(size: int) -> int:
    devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    if not devices:
        print(json.dumps({"ok": False, "error": "no OpenCL device"}))
        return 1
    device = devices[0]
    context = cl.Context([device])
    queue = cl.CommandQueue(context)
    a = np.arange(size, dtype=np.float32)
    b = np.full(size, 0.5, dtype=np.float32)
    flags = cl.mem_flags
    a_buf = cl.Buffer(context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=a)
    b_buf = cl.Buffer(context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=b)
    out_buf = cl.Buffer(context, flags.WRITE_ONLY, a.nbytes)
    program = cl.Program(context, KERNEL).build()
    program.add(queue, (size,), None, a_buf, b_buf, out_buf)
    out = np.empty_like(a)
    cl.enqueue_copy(queue, out, out_buf).wait()
    ok = bool(np.array_equal(out, a + b))
    print(json.dumps({"ok": ok, "device": device.name, "devices": len(devices), "size": size}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 16))
