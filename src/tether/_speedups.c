/*
 * The hot path of tether's protocol core, in C: unmasking payloads,
 * reading frame headers, reading messages that came in one plain frame each,
 * building frames, and the framing around zlib of a compressed message.
 * tether/protocol/masking.py, frames.py and
 * tether/extensions/permessage_deflate.py hold the pure-Python versions,
 * which give the same results and are used when this module is missing or
 * TETHER_NO_SPEEDUPS=1 is set.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* The module keeps its state (interned names, the classes and methods it
 * checks against, caches keyed by type version tags) in C statics that the
 * GIL guards. A free-threaded CPython would run it without one: setup.py
 * does not build it there, and this stops any other build. */
#ifdef Py_GIL_DISABLED
#error "tether._speedups needs the GIL: free-threaded CPython runs tether in pure Python"
#endif

/* CPython API beyond the public one, checked against the headers and run
 * by the suite on 3.11, 3.12 and 3.13 (make test-python):
 * - _PyType_Lookup (cpython/object.h): a class attribute through the MRO
 *   and the type method cache, returned borrowed, compared by identity. Kept
 *   for its cost; its public form, PyType_Lookup (3.15), returns a new
 *   reference.
 * - tp_version_tag (see frame_own_methods): 0 means none, and a class that
 *   changes gets a new one, never reused. A class keeps 0 once the tags run
 *   out, or (3.13) once it changed too often: it is looked up each time then.
 * Nothing reaches into asyncio's Future or Task structs, frames or
 * reference counts: futures are driven through their own methods. */

/* Unmasking runs over every byte a server receives, so it gets the widest
 * registers the compiler and the processor offer. GCC and clang vector types
 * give 16-byte operations on any target with SIMD (SSE2 on every x86-64),
 * and on x86-64 a 32-byte AVX2 variant is picked at import when the processor
 * has it. Loads and stores go through memcpy: payloads have no alignment. */
#if defined(__GNUC__) || defined(__clang__)
#define TETHER_VECTORS 1
typedef unsigned char v16 __attribute__((vector_size(16)));
#if defined(__x86_64__)
#define TETHER_AVX2 1
typedef unsigned char v32 __attribute__((vector_size(32)));
static int have_avx2;
#endif

/* Interns `text` into the static `var` unless it is made already; on
 * failure, returns -1 from the (int) init function using it. The inits run
 * again after a partial failure, so a name made once is kept. */
#define INTERN_ONCE(var, text)                                              \
    if (var == NULL && (var = PyUnicode_InternFromString(text)) == NULL) {  \
        return -1;                                                          \
    }

/* XOR `src` into `dst` from byte `i` on, four vectors of type `vec` at a
 * time, each XORed with `wide` (the key repeated); `i` ends after the last
 * whole step. Four named variables, not an array, so that they stay in
 * registers. One body for every vector width. */
#define XOR_STEPS(vec, wide, src, dst, size, i)                             \
    for (; (i) + 4 * (Py_ssize_t)sizeof(vec) <= (size);                     \
         (i) += 4 * (Py_ssize_t)sizeof(vec)) {                              \
        vec a_, b_, c_, d_;                                                 \
        memcpy(&a_, (src) + (i), sizeof(vec));                              \
        memcpy(&b_, (src) + (i) + sizeof(vec), sizeof(vec));                \
        memcpy(&c_, (src) + (i) + 2 * sizeof(vec), sizeof(vec));            \
        memcpy(&d_, (src) + (i) + 3 * sizeof(vec), sizeof(vec));            \
        a_ ^= (wide);                                                       \
        b_ ^= (wide);                                                       \
        c_ ^= (wide);                                                       \
        d_ ^= (wide);                                                       \
        memcpy((dst) + (i), &a_, sizeof(vec));                              \
        memcpy((dst) + (i) + sizeof(vec), &b_, sizeof(vec));                \
        memcpy((dst) + (i) + 2 * sizeof(vec), &c_, sizeof(vec));            \
        memcpy((dst) + (i) + 3 * sizeof(vec), &d_, sizeof(vec));            \
    }
#endif

#ifdef TETHER_AVX2
/* XOR whole 128-byte blocks with AVX2; return how many bytes were done. */
__attribute__((target("avx2"))) static Py_ssize_t
xor_mask_avx2(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
              const unsigned char *pattern)
{
    v32 wide;
    Py_ssize_t i = 0;

    memcpy(&wide, pattern, 32);
    XOR_STEPS(v32, wide, src, dst, size, i)
    return i;
}
#endif

/* XOR `size` bytes of `src` with the 4-byte `key` into `dst` (which may be
 * `src`), starting at key offset 0. Every block is a multiple of 4 bytes, so
 * the key stays in step from one loop to the next. */
static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t size,
         const unsigned char *key)
{
    Py_ssize_t i = 0;
    uint64_t wide;
    unsigned char pattern[32];

    /* The key repeated: built in full only for payloads that use vectors,
     * so that a small message's unmasking costs little more than its XOR. */
    memcpy(pattern, key, 4);
    memcpy(pattern + 4, key, 4);
#ifdef TETHER_VECTORS
    if (size >= 16) {
        memcpy(pattern + 8, pattern, 8);
        memcpy(pattern + 16, pattern, 16);
#ifdef TETHER_AVX2
        if (have_avx2 && size >= 128) {
            i = xor_mask_avx2(src, dst, size, pattern);
        }
#endif
        v16 wide16;
        memcpy(&wide16, pattern, 16);
        XOR_STEPS(v16, wide16, src, dst, size, i)
        for (; i + 16 <= size; i += 16) {
            v16 chunk;
            memcpy(&chunk, src + i, 16);
            chunk ^= wide16;
            memcpy(dst + i, &chunk, 16);
        }
    }
#endif
    memcpy(&wide, pattern, 8);
    for (; i + 8 <= size; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, src + i, 8);
        chunk ^= wide;
        memcpy(dst + i, &chunk, 8);
    }
    for (; i < size; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, mask) -> bytes\n\n"
"XOR data with the 4-byte mask repeated; masking and unmasking are the same.");

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    xor_mask((const unsigned char *)data.buf,
             (unsigned char *)PyBytes_AS_STRING(result), data.len,
             (const unsigned char *)mask.buf);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyObject *protocol_error;  /* tether.exceptions.ProtocolError */
static PyObject *payload_too_big;  /* tether.exceptions.PayloadTooBig */
static PyObject *decode_message_name;  /* "decode_message" */

static PyObject *
fail(const char *message)
{
    PyObject *exc = PyObject_CallFunction(protocol_error, "s", message);
    if (exc != NULL) {
        PyErr_SetObject(protocol_error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyDoc_STRVAR(parse_header_doc,
"parse_header(header_type, buf, pos, expect_mask, allowed_rsv) -> header or None\n\n"
"Read the frame header at buf[pos:] as tether.protocol.frames.read_header does;\n"
"header_type is the tuple subclass to return.");

static PyObject *
parse_header(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    int expect_mask, allowed_rsv;
    PyObject *header_type;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "Oy*npi:parse_header", &header_type, &view, &pos,
                          &expect_mask, &allowed_rsv)) {
        return NULL;
    }
    /* Six items are set in what header_type allocates: a tuple type only. */
    if (!PyType_Check(header_type)
        || !PyType_FastSubclass((PyTypeObject *)header_type, Py_TPFLAGS_TUPLE_SUBCLASS)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "header_type must be a tuple type");
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t available = view.len - pos;
    if (pos < 0) {
        PyErr_SetString(PyExc_ValueError, "negative position");
        goto done;
    }
    if (available < 1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    unsigned char first = buf[pos];
    int opcode = first & 0x0F;
    if (!(opcode <= 2 || (opcode >= 8 && opcode <= 10))) {
        char message[64];
        snprintf(message, sizeof message, "reserved opcode %#x", opcode);
        fail(message);
        goto done;
    }
    int rsv = first & 0x70;
    if (rsv & ~allowed_rsv) {
        char message[80];
        snprintf(message, sizeof message,
                 "reserved bits %d%d%d set with no extension to use them",
                 (rsv >> 6) & 1, (rsv >> 5) & 1, (rsv >> 4) & 1);
        fail(message);
        goto done;
    }
    int fin = (first & 0x80) != 0;
    int control = opcode >= 8;
    if (control && !fin) {
        fail("fragmented control frame");
        goto done;
    }
    if (available < 2) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    unsigned char second = buf[pos + 1];
    int masked = (second & 0x80) != 0;
    if (masked != (expect_mask != 0)) {
        fail(masked ? "incorrect masking" : "unmasked frame from client");
        goto done;
    }
    unsigned long long length = second & 0x7F;
    if (control && length > 125) {
        fail("control frame payload over 125 bytes");
        goto done;
    }
    Py_ssize_t size = 2;
    if (length == 126) {
        if (available < 4) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        length = ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3];
        size = 4;
    }
    else if (length == 127) {
        if (available < 3) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (buf[pos + 2] & 0x80) {
            fail("64-bit payload length with its most significant bit set");
            goto done;
        }
        if (available < 10) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        length = 0;
        for (int k = 2; k < 10; k++) {
            length = (length << 8) | buf[pos + k];
        }
        size = 10;
    }
    PyObject *key;
    if (masked) {
        if (available < size + 4) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        key = PyBytes_FromStringAndSize((const char *)buf + pos + size, 4);
        if (key == NULL) {
            goto done;
        }
        size += 4;
    }
    else {
        key = Py_NewRef(Py_None);
    }
    /* The header type is a NamedTuple, so a tuple with six slots. */
    PyTypeObject *type = (PyTypeObject *)header_type;
    PyObject *length_object = PyLong_FromUnsignedLongLong(length);
    PyObject *rsv_object = PyLong_FromLong(rsv);
    PyObject *opcode_object = PyLong_FromLong(opcode);
    PyObject *size_object = PyLong_FromSsize_t(size);
    result = type->tp_alloc(type, 6);
    if (result == NULL || length_object == NULL || rsv_object == NULL
        || opcode_object == NULL || size_object == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(length_object);
        Py_XDECREF(rsv_object);
        Py_XDECREF(opcode_object);
        Py_XDECREF(size_object);
        Py_DECREF(key);
        result = NULL;
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, Py_NewRef(fin ? Py_True : Py_False));
    PyTuple_SET_ITEM(result, 1, rsv_object);
    PyTuple_SET_ITEM(result, 2, opcode_object);
    PyTuple_SET_ITEM(result, 3, length_object);
    PyTuple_SET_ITEM(result, 4, key);
    PyTuple_SET_ITEM(result, 5, size_object);
done:
    PyBuffer_Release(&view);
    return result;
}

/* 0 when `key` is None or a 4-byte masking key; -1 with ValueError otherwise. */
static int
check_key(PyObject *key)
{
    if (key != Py_None && (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 4)) {
        PyErr_SetString(PyExc_ValueError, "key must be 4 bytes or None");
        return -1;
    }
    return 0;
}

/* Inlined into each caller: frames are built per message sent. */
#if defined(__GNUC__) || defined(__clang__)
#define TETHER_INLINE static inline __attribute__((always_inline))
#else
#define TETHER_INLINE static inline
#endif

/* The size of a frame header for a payload of `length` bytes, masking key included. */
TETHER_INLINE Py_ssize_t
header_size(Py_ssize_t length, int masked)
{
    Py_ssize_t size = length < 126 ? 2 : (length < 0x10000 ? 4 : 10);
    return masked ? size + 4 : size;
}

/* Write the header of a frame whose first byte is `first` and whose payload
 * is `length` bytes, with the masking key `key` unless it is NULL; return
 * where the payload starts. */
TETHER_INLINE Py_ssize_t
write_header(unsigned char *out, unsigned char first, Py_ssize_t length,
             const unsigned char *key)
{
    unsigned char mask_bit = key != NULL ? 0x80 : 0;
    Py_ssize_t at;
    out[0] = first;
    if (length < 126) {
        out[1] = mask_bit | (unsigned char)length;
        at = 2;
    }
    else if (length < 0x10000) {
        out[1] = mask_bit | 126;
        out[2] = (unsigned char)(length >> 8);
        out[3] = (unsigned char)length;
        at = 4;
    }
    else {
        unsigned long long wide = (unsigned long long)length;
        out[1] = mask_bit | 127;
        for (int k = 9; k >= 2; k--) {
            out[k] = (unsigned char)wide;
            wide >>= 8;
        }
        at = 10;
    }
    if (key != NULL) {
        memcpy(out + at, key, 4);
        at += 4;
    }
    return at;
}

PyDoc_STRVAR(build_frame_doc,
"build_frame(first, data, key) -> bytes\n\n"
"One frame in one allocation: the first header byte `first` (FIN, RSV bits and\n"
"opcode), the length, then `key` and the payload masked with it when `key` is\n"
"4 bytes, or the payload as is when `key` is None.");

static PyObject *
build_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    PyObject *result = NULL;

    /* Fast-call arguments, unpacked by hand: this runs per message sent. */
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "build_frame takes 3 arguments");
        return NULL;
    }
    long first = PyLong_AsLong(args[0]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *key = args[2];
    int masked = key != Py_None;
    if (check_key(key) < 0) {
        return NULL;
    }
    if (first < 0 || first > 0xFF) {
        PyErr_SetString(PyExc_ValueError, "first header byte out of range");
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t length = data.len;
    const unsigned char *key_bytes =
        masked ? (const unsigned char *)PyBytes_AS_STRING(key) : NULL;
    result = PyBytes_FromStringAndSize(NULL, header_size(length, masked) + length);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t at = write_header(out, (unsigned char)first, length, key_bytes);
    if (masked) {
        xor_mask((const unsigned char *)data.buf, out + at, length, key_bytes);
    }
    else {
        memcpy(out + at, data.buf, length);
    }
done:
    PyBuffer_Release(&data);
    return result;
}


/* tether.protocol.events.Message, and where it keeps its payload: the
 * offset of its `data` slot. Messages are made here without running the
 * dataclass's __init__, which would cost more than parsing the frame. */
static PyTypeObject *message_type;
static Py_ssize_t message_data_offset;

/* Where objects of `type` keep the field `name`: set *offset and return 0 when
 * it is an object slot (as a dataclass with slots=True makes), or raise
 * TypeError naming `what` and return -1. */
static int
slot_offset(PyObject *type, const char *what, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL) {
        return -1;
    }
    int slot = Py_IS_TYPE(descr, &PyMemberDescr_Type)
               && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
    if (slot) {
        *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    Py_DECREF(descr);
    if (!slot) {
        PyErr_Format(PyExc_TypeError, "%s must keep `%s` in a slot", what, name);
        return -1;
    }
    return 0;
}

static int
find_message_type(void)
{
    PyObject *events = PyImport_ImportModule("tether.protocol.events");
    if (events == NULL) {
        return -1;
    }
    PyObject *type = PyObject_GetAttrString(events, "Message");
    Py_DECREF(events);
    if (type == NULL) {
        return -1;
    }
    if (!PyType_Check(type) || slot_offset(type, "Message", "data", &message_data_offset) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "tether.protocol.events.Message is not a type");
        }
        Py_DECREF(type);
        return -1;
    }
    message_type = (PyTypeObject *)type;
    return 0;
}

static PyObject *
new_message(PyObject *payload)
{
    PyObject *message = message_type->tp_alloc(message_type, 0);
    if (message == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    /* The slot takes the reference. */
    *(PyObject **)((char *)message + message_data_offset) = payload;
    return message;
}

PyDoc_STRVAR(make_message_doc,
"make_message(data)\n--\n\n"
"A Message event holding data, made without running its __init__: what\n"
"Message(data) makes, faster.");

static PyObject *
make_message(PyObject *self, PyObject *data)
{
    Py_INCREF(data);
    return new_message(data);
}


/* tether.protocol.frames.Frame and the offsets of its six slots, found on
 * the first call. A frozen dataclass's __init__ sets each field through
 * object.__setattr__, which costs more than the rest of handling a small
 * compressed frame; frames of extensions are made here instead. */
static const char *const frame_fields[6] = {"opcode", "data", "fin", "rsv1", "rsv2", "rsv3"};
static PyTypeObject *frame_type;
static Py_ssize_t frame_offsets[6];

static int
find_frame_slots(PyObject *type)
{
    Py_ssize_t offsets[6];
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "new_frame needs the Frame type");
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        if (slot_offset(type, "Frame", frame_fields[i], &offsets[i]) < 0) {
            return -1;
        }
    }
    memcpy(frame_offsets, offsets, sizeof(offsets));
    Py_INCREF(type);
    Py_XSETREF(frame_type, (PyTypeObject *)type);
    return 0;
}

PyDoc_STRVAR(new_frame_doc,
"new_frame(frame_type, opcode, data, fin, rsv1, rsv2, rsv3)\n--\n\n"
"A Frame with these fields, made without running its __init__: what\n"
"frame_type(opcode, data, fin, rsv1, rsv2, rsv3) makes, faster.");

static PyObject *
new_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "new_frame takes 7 arguments");
        return NULL;
    }
    if ((PyObject *)frame_type != args[0] && find_frame_slots(args[0]) < 0) {
        return NULL;
    }
    PyObject *frame = frame_type->tp_alloc(frame_type, 0);
    if (frame == NULL) {
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        Py_INCREF(args[i + 1]);
        *(PyObject **)((char *)frame + frame_offsets[i]) = args[i + 1];
    }
    return frame;
}

/* The payload of a complete frame: bytes, or str for text. NULL with no
 * exception set when the text is not valid UTF-8. */
static PyObject *
frame_payload(const unsigned char *payload, Py_ssize_t length, const unsigned char *key,
              int text)
{
    if (!text) {
        if (key == NULL) {
            return PyBytes_FromStringAndSize((const char *)payload, length);
        }
        PyObject *data = PyBytes_FromStringAndSize(NULL, length);
        if (data != NULL) {
            xor_mask(payload, (unsigned char *)PyBytes_AS_STRING(data), length, key);
        }
        return data;
    }
    unsigned char small[256];
    unsigned char *plain = (unsigned char *)payload;
    if (key != NULL) {
        plain = length <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc(length);
        if (plain == NULL) {
            return PyErr_NoMemory();
        }
        xor_mask(payload, plain, length, key);
    }
    PyObject *data = PyUnicode_DecodeUTF8((const char *)plain, length, NULL);
    if (plain != payload && plain != small) {
        PyMem_Free(plain);
    }
    if (data == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        /* The engine's general path reports it, with close code 1007. */
        PyErr_Clear();
    }
    return data;
}

/* Raise ProtocolError with `message` and close code `code`. */
static PyObject *
fail_with(PyObject *type, const char *message, int code)
{
    PyObject *exc = PyObject_CallFunction(type, "si", message, code);
    if (exc != NULL) {
        PyErr_SetObject(type, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* The exception being raised, normalized, with its traceback; cleared. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* The text of a decompressed message, or NULL with ProtocolError (1007)
 * when it is not UTF-8. */
static PyObject *
utf8_message(const char *data, Py_ssize_t size)
{
    PyObject *decoded = PyUnicode_DecodeUTF8(data, size, NULL);
    if (decoded == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        /* Chained as the Python twin's `raise ... from exc` does. */
        PyObject *cause = take_exception();
        fail_with(protocol_error, "invalid UTF-8 in text message", 1007);
        PyObject *error = take_exception();
        PyException_SetCause(error, cause);
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
    }
    return decoded;
}

/* In the permessage-deflate section below: the message of a compressed
 * frame decompressed without calling decode_message, or Py_NotImplemented
 * (borrowed) when it must be called. */
static PyObject *whole_payload_direct(PyObject *whole, const unsigned char *payload,
                                      Py_ssize_t length, const unsigned char *key, int text,
                                      PyObject *max_size_object, Py_ssize_t max_size);

/* The message of a frame compressed by `whole`, the connection's only
 * extension: its payload, unmasked, goes to whole.decode_message(payload,
 * None, max_size), whose result must stay within max_size (-1: no bound)
 * and, for text, be UTF-8. NULL with an exception set otherwise. */
static PyObject *
whole_payload(PyObject *whole, const unsigned char *payload, Py_ssize_t length,
              const unsigned char *key, int text, PyObject *max_size_object,
              Py_ssize_t max_size)
{
    PyObject *direct = whole_payload_direct(whole, payload, length, key, text, max_size_object,
                                            max_size);
    if (direct != Py_NotImplemented) {
        return direct;
    }
    PyObject *raw = PyBytes_FromStringAndSize(NULL, length);
    if (raw == NULL) {
        return NULL;
    }
    if (key != NULL) {
        xor_mask(payload, (unsigned char *)PyBytes_AS_STRING(raw), length, key);
    }
    else {
        memcpy(PyBytes_AS_STRING(raw), payload, length);
    }
    PyObject *call[4] = {whole, raw, Py_None, max_size_object};
    PyObject *data = PyObject_VectorcallMethod(decode_message_name, call, 4, NULL);
    Py_DECREF(raw);
    if (data == NULL) {
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "decode_message did not return bytes");
        return NULL;
    }
    if (max_size >= 0 && PyBytes_GET_SIZE(data) > max_size) {
        /* PayloadTooBig(size, max_size), as the Python twin raises it. */
        PyObject *exc = PyObject_CallFunction(payload_too_big, "nn", PyBytes_GET_SIZE(data),
                                              max_size);
        Py_DECREF(data);
        if (exc != NULL) {
            PyErr_SetObject(payload_too_big, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (!text) {
        return data;
    }
    PyObject *decoded = utf8_message(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    Py_DECREF(data);
    return decoded;
}

/* Whether the frame at `frame` (`available` bytes from there, at least 2)
 * is all there, masked as `expect_mask` asks, with a 64-bit length whose
 * top bit is clear: then set *size to its header's size (masking key
 * included: the key is its last 4 bytes) and *length to its payload's. */
TETHER_INLINE int
whole_frame(const unsigned char *frame, Py_ssize_t available, int expect_mask,
            Py_ssize_t *size, unsigned long long *length)
{
    unsigned char second = frame[1];
    if ((second >> 7) != expect_mask) {
        return 0;
    }
    unsigned long long n = second & 0x7F;
    Py_ssize_t at = 2;
    if (n == 126) {
        if (available < 4) {
            return 0;
        }
        n = ((unsigned long long)frame[2] << 8) | frame[3];
        at = 4;
    }
    else if (n == 127) {
        if (available < 10 || (frame[2] & 0x80)) {
            return 0;
        }
        n = 0;
        for (int k = 2; k < 10; k++) {
            n = (n << 8) | frame[k];
        }
        at = 10;
    }
    if (expect_mask) {
        at += 4;
    }
    if (available < at || n > (unsigned long long)(available - at)) {
        return 0;
    }
    *size = at;
    *length = n;
    return 1;
}

/* A size bound given as None or an int of at least 0: -1 (no bound) for None
 * and for an int beyond Py_ssize_t, which bounds nothing (no frame or object
 * is that large; the Python twins take such a bound as it is); the int
 * otherwise. -2 with an exception for anything else. */
static Py_ssize_t
size_bound(PyObject *bound)
{
    if (bound == Py_None) {
        return -1;
    }
    if (!PyLong_Check(bound)) {
        PyErr_SetString(PyExc_TypeError, "a size bound must be None or an int");
        return -2;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(bound, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -2;
    }
    if (overflow > 0 || value > PY_SSIZE_T_MAX) {
        return -1;
    }
    if (overflow < 0 || value < 0) {
        PyErr_SetString(PyExc_ValueError, "negative position, size or limit");
        return -2;
    }
    return (Py_ssize_t)value;
}

PyDoc_STRVAR(read_messages_doc,
"read_messages(buf, pos, expect_mask, max_size, limit, events, whole) -> int\n\n"
"Read the whole messages at buf[pos:] that each came in one plain frame, or\n"
"in one frame with RSV1 through the extension `whole` unless it is None, as\n"
"tether.protocol.frames.read_messages_python does, appending a Message event\n"
"per message to events; return where reading stopped.");

static PyObject *
read_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "read_messages takes 7 arguments");
        return NULL;
    }
    PyObject *whole = args[6];
    Py_buffer view;
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    int expect_mask = PyObject_IsTrue(args[2]);
    /* -1 stands for None (no bound) from here on: a negative argument is refused. */
    Py_ssize_t limit = args[4] == Py_None ? 0 : PyLong_AsSsize_t(args[4]);
    PyObject *events = args[5];
    if (PyErr_Occurred() || expect_mask < 0) {
        return NULL;
    }
    if (pos < 0 || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "negative position, size or limit");
        return NULL;
    }
    Py_ssize_t max_size = size_bound(args[3]);
    if (max_size == -2) {
        return NULL;
    }
    if (args[4] == Py_None) {
        limit = -1;
    }
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "events must be a list");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    Py_ssize_t count = 0;
    int failed = 0;
    while (pos < end && count != limit) {
        const unsigned char *frame = buf + pos;
        Py_ssize_t available = end - pos;
        if (available < 2) {
            break;
        }
        /* FIN set, no RSV bit, text or binary: a message in one plain frame;
         * with RSV1 too, one for `whole` to decode. */
        unsigned char first = frame[0];
        int compressed = first == 0xC1 || first == 0xC2;
        if (first != 0x81 && first != 0x82 && !(compressed && whole != Py_None)) {
            break;
        }
        Py_ssize_t size;
        unsigned long long length;
        if (!whole_frame(frame, available, expect_mask, &size, &length)) {
            break;
        }
        const unsigned char *key = expect_mask ? frame + size - 4 : NULL;
        PyObject *data;
        if (compressed) {
            /* The bound on a compressed frame, as compressed_frame_limit: deflate
             * may grow incompressible data a little. */
            if (max_size >= 0
                && length > (unsigned long long)max_size + (max_size >> 10) + 64) {
                break;
            }
            data = whole_payload(whole, frame + size, (Py_ssize_t)length, key, first == 0xC1,
                                 args[3], max_size);
            if (data == NULL) {
                failed = 1;
                break;
            }
        }
        else {
            if (max_size >= 0 && length > (unsigned long long)max_size) {
                break;
            }
            data = frame_payload(frame + size, (Py_ssize_t)length, key, first == 0x81);
            if (data == NULL) {
                failed = PyErr_Occurred() != NULL;
                break;
            }
        }
        PyObject *message = new_message(data);
        if (message == NULL) {
            failed = 1;
            break;
        }
        int appended = PyList_Append(events, message);
        Py_DECREF(message);
        if (appended < 0) {
            failed = 1;
            break;
        }
        pos += size + (Py_ssize_t)length;
        count++;
    }
    PyBuffer_Release(&view);
    return failed ? NULL : PyLong_FromSsize_t(pos);
}

PyDoc_STRVAR(new_payload_doc,
"new_payload(size) -> bytes\n\n"
"A bytes object of `size` bytes whose content is not set yet, for fill_payload\n"
"to write a large message into as it arrives. It must be filled whole before\n"
"anyone but its maker sees it.");

static PyObject *
new_payload(PyObject *self, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be at least 0");
        return NULL;
    }
    return PyBytes_FromStringAndSize(NULL, size);
}

PyDoc_STRVAR(fill_payload_doc,
"fill_payload(target, at, data, key) -> None\n\n"
"Write `data` into `target` (a payload from new_payload, or a bytearray) from\n"
"offset `at`, unmasked with the 4-byte `key` (already in step with `data`'s\n"
"first byte) or copied as is when `key` is None.");

static PyObject *
fill_payload(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    unsigned char *out;
    Py_ssize_t room;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fill_payload takes 4 arguments");
        return NULL;
    }
    PyObject *target = args[0];
    if (PyBytes_CheckExact(target)) {
        out = (unsigned char *)PyBytes_AS_STRING(target);
        room = PyBytes_GET_SIZE(target);
    }
    else if (PyByteArray_CheckExact(target)) {
        out = (unsigned char *)PyByteArray_AS_STRING(target);
        room = PyByteArray_GET_SIZE(target);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "target must be bytes or bytearray");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *key = args[3];
    if (check_key(key) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (at < 0 || data.len > room - at) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "data does not fit in target at that offset");
        return NULL;
    }
    if (key == Py_None) {
        memcpy(out + at, data.buf, data.len);
    }
    else {
        xor_mask((const unsigned char *)data.buf, out + at, data.len,
                 (const unsigned char *)PyBytes_AS_STRING(key));
    }
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

/* What permessage-deflate calls on zlib's objects (zlib.compressobj and
 * zlib.decompressobj, made and kept by the extension in Python): the method
 * names and Z_SYNC_FLUSH, found at import. */
static PyObject *compress_name, *flush_name, *decompress_name, *sync_flush;

/* The empty stored block a sync flush ends with (RFC 7692 section 7.2.1). */
static const unsigned char deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* The bytes returned by a call to zlib, or NULL with TypeError. */
static PyObject *
zlib_bytes(PyObject *result)
{
    if (result != NULL && !PyBytes_Check(result)) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_TypeError, "the zlib object did not return bytes");
        return NULL;
    }
    return result;
}

/* ------------------------------------------------------------------------
 * permessage-deflate on zlib itself.
 *
 * Deflater and Inflater hold a z_stream each and answer the few calls
 * tether.extensions.permessage_deflate makes on zlib.compressobj and
 * zlib.decompressobj objects (compress, flush with Z_SYNC_FLUSH,
 * decompress with max_length, eof, unused_data), with the same results and
 * the same zlib.error messages. The extension makes them, lazily as before,
 * when this module is in use. deflate_frame and inflate_frame below then
 * run zlib directly on them: no Python call, no bytes object between zlib
 * and the frame or the message, and the GIL kept (a message of a few
 * kilobytes takes microseconds, less than handing the GIL over costs).
 * ------------------------------------------------------------------------ */

#include <zlib.h>

static PyObject *zlib_error_type;  /* zlib.error */

/* Raise zlib.error as the zlib module words it. */
static void
zlib_fail(z_stream *zs, int err, const char *what)
{
    const char *zmsg = zs->msg;
    if (zmsg == NULL) {
        switch (err) {
        case Z_BUF_ERROR:
            zmsg = "incomplete or truncated stream";
            break;
        case Z_STREAM_ERROR:
            zmsg = "inconsistent stream state";
            break;
        case Z_DATA_ERROR:
            zmsg = "invalid input data";
            break;
        }
    }
    if (zmsg == NULL) {
        PyErr_Format(zlib_error_type, "Error %d %s", err, what);
    }
    else {
        PyErr_Format(zlib_error_type, "Error %d %s: %.200s", err, what, zmsg);
    }
}

/* Where zlib writes: a static area first, which most messages fit, then
 * memory of its own that doubles. The GIL, held throughout, keeps the static
 * area to one caller at a time; nothing in between calls back into Python. */
#define ZBUF_STATIC 65536
static unsigned char zbuf_area[ZBUF_STATIC];

typedef struct {
    unsigned char *data;
    size_t size;  /* bytes written */
    size_t capacity;
} zbuf;

static void
zbuf_init(zbuf *buf)
{
    buf->data = zbuf_area;
    buf->size = 0;
    buf->capacity = ZBUF_STATIC;
}

static void
zbuf_release(zbuf *buf)
{
    if (buf->data != zbuf_area) {
        PyMem_Free(buf->data);
    }
    buf->data = NULL;
}

/* Room for at least one more byte, up to `limit` in all (0: no limit);
 * -1 with MemoryError. */
static int
zbuf_grow(zbuf *buf, size_t limit)
{
    size_t capacity = buf->capacity * 2;
    if (limit && capacity > limit) {
        capacity = limit;
    }
    unsigned char *data;
    if (buf->data == zbuf_area) {
        data = PyMem_Malloc(capacity);
        if (data != NULL) {
            memcpy(data, zbuf_area, buf->size);
        }
    }
    else {
        data = PyMem_Realloc(buf->data, capacity);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->capacity = capacity;
    return 0;
}

/* Run deflate with `flush` over the input set in `zs` until it is all taken
 * and, for a flush, all emitted; 0 or -1 with zlib.error. */
static int
zbuf_deflate(zbuf *buf, z_stream *zs, int flush)
{
    for (;;) {
        if (buf->size == buf->capacity && zbuf_grow(buf, 0) < 0) {
            return -1;
        }
        size_t room = buf->capacity - buf->size;
        uInt avail = room > UINT_MAX ? UINT_MAX : (uInt)room;
        zs->next_out = buf->data + buf->size;
        zs->avail_out = avail;
        int err = deflate(zs, flush);
        buf->size += avail - zs->avail_out;
        if (err == Z_STREAM_ERROR) {
            zlib_fail(zs, err, flush == Z_NO_FLUSH ? "while compressing data" : "while flushing");
            return -1;
        }
        /* Output room left over means zlib is done with this call's work. */
        if (zs->avail_out != 0 && zs->avail_in == 0) {
            return 0;
        }
    }
}

/* Feed `size` bytes at `data` to deflate, in pieces of at most UINT_MAX. */
static int
zbuf_deflate_all(zbuf *buf, z_stream *zs, const unsigned char *data, size_t size)
{
    do {
        uInt piece = size > UINT_MAX ? UINT_MAX : (uInt)size;
        zs->next_in = (Bytef *)data;
        zs->avail_in = piece;
        if (zbuf_deflate(buf, zs, Z_NO_FLUSH) < 0) {
            return -1;
        }
        data += piece;
        size -= piece;
    } while (size);
    return 0;
}

typedef struct {
    PyObject_HEAD
    z_stream zs;
} DeflaterObject;

static PyTypeObject DeflaterType;

/* Raise the error of a deflateInit2 or inflateInit2 that returned `err`, as
 * zlib's compressobj and decompressobj word it. The stream is marked not
 * initialized: the deallocator must not end it. */
static void
zlib_init_fail(z_stream *zs, int err, const char *what)
{
    zs->state = NULL;
    if (err == Z_MEM_ERROR) {
        PyErr_NoMemory();
    }
    else if (err == Z_STREAM_ERROR) {
        PyErr_SetString(PyExc_ValueError, "invalid initialization option");
    }
    else {
        zlib_fail(zs, err, what);
    }
}

static PyObject *
Deflater_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    int level, wbits, mem_level, strategy;
    static char *names[] = {"level", "wbits", "memLevel", "strategy", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iiii:Deflater", names, &level, &wbits,
                                     &mem_level, &strategy)) {
        return NULL;
    }
    DeflaterObject *self = (DeflaterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* tp_alloc zeroed the stream: zalloc, zfree and opaque are Z_NULL. */
    int err = deflateInit2(&self->zs, level, Z_DEFLATED, wbits, mem_level, strategy);
    if (err != Z_OK) {
        zlib_init_fail(&self->zs, err, "while creating compression object");
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Deflater_dealloc(DeflaterObject *self)
{
    if (self->zs.state != NULL) {
        deflateEnd(&self->zs);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The bytes written to `buf`, which is released. */
static PyObject *
zbuf_bytes(zbuf *buf)
{
    PyObject *result = PyBytes_FromStringAndSize((const char *)buf->data, buf->size);
    zbuf_release(buf);
    return result;
}

static PyObject *
Deflater_compress(DeflaterObject *self, PyObject *arg)
{
    Py_buffer data;
    zbuf buf;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    zbuf_init(&buf);
    int failed = zbuf_deflate_all(&buf, &self->zs, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (failed) {
        zbuf_release(&buf);
        return NULL;
    }
    return zbuf_bytes(&buf);
}

static PyObject *
Deflater_flush(DeflaterObject *self, PyObject *arg)
{
    long mode = PyLong_AsLong(arg);
    if (mode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (mode != Z_SYNC_FLUSH && mode != Z_FULL_FLUSH) {
        PyErr_SetString(PyExc_ValueError, "Deflater.flush takes Z_SYNC_FLUSH or Z_FULL_FLUSH");
        return NULL;
    }
    zbuf buf;
    zbuf_init(&buf);
    self->zs.next_in = NULL;
    self->zs.avail_in = 0;
    if (zbuf_deflate(&buf, &self->zs, (int)mode) < 0) {
        zbuf_release(&buf);
        return NULL;
    }
    return zbuf_bytes(&buf);
}

static PyMethodDef Deflater_methods[] = {
    {"compress", (PyCFunction)Deflater_compress, METH_O,
     "compress(data) -> bytes\n\nAs zlib's Compress.compress."},
    {"flush", (PyCFunction)Deflater_flush, METH_O,
     "flush(mode) -> bytes\n\nAs zlib's Compress.flush, for Z_SYNC_FLUSH or Z_FULL_FLUSH."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Deflater_doc,
"Deflater(level, wbits, memLevel, strategy)\n\n"
"A zlib compressor for permessage-deflate, as zlib.compressobj(level, DEFLATED,\n"
"wbits, memLevel, strategy) with compress() and flush(Z_SYNC_FLUSH), which\n"
"deflate_frame drives without Python calls.");

static PyTypeObject DeflaterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether._speedups.Deflater",
    .tp_basicsize = sizeof(DeflaterObject),
    .tp_dealloc = (destructor)Deflater_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Deflater_doc,
    .tp_methods = Deflater_methods,
    .tp_new = Deflater_new,
};

typedef struct {
    PyObject_HEAD
    z_stream zs;
    char eof;
    PyObject *unused_data;  /* bytes after the end of the stream */
} InflaterObject;

static PyTypeObject InflaterType;

static PyObject *
Inflater_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    int wbits;
    static char *names[] = {"wbits", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i:Inflater", names, &wbits)) {
        return NULL;
    }
    InflaterObject *self = (InflaterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->unused_data = PyBytes_FromStringAndSize(NULL, 0);
    if (self->unused_data == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    int err = inflateInit2(&self->zs, wbits);
    if (err != Z_OK) {
        zlib_init_fail(&self->zs, err, "while creating decompression object");
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Inflater_dealloc(InflaterObject *self)
{
    if (self->zs.state != NULL) {
        inflateEnd(&self->zs);
    }
    Py_XDECREF(self->unused_data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Inflate `size` bytes at `data`, masked with `key` (NULL: not masked) from
 * its byte `phase`, into `buf`, which holds at most `limit` bytes (0: no
 * limit). Masked input is unmasked a piece at a time on the stack, never
 * copied whole. Return 1 when the stream ended (the bytes after its end
 * become unused_data, followed by `more` bytes at `more_data`, unmasked),
 * 0 when the input is all taken, 2 when the limit left some unread, -1 with
 * an exception. */
static int
inflate_into(InflaterObject *self, zbuf *buf, const unsigned char *data, size_t size,
             const unsigned char *key, size_t limit, const unsigned char *more_data,
             size_t more)
{
    z_stream *zs = &self->zs;
    unsigned char piece[4096];
    size_t at = 0;
    while (at < size) {
        size_t take = size - at;
        const unsigned char *input = data + at;
        if (key != NULL) {
            if (take > sizeof piece) {
                take = sizeof piece;
            }
            /* Pieces of 4096 bytes keep the key's phase at 0. */
            xor_mask(input, piece, (Py_ssize_t)take, key);
            input = piece;
        }
        else if (take > UINT_MAX) {
            take = UINT_MAX;
        }
        zs->next_in = (Bytef *)input;
        zs->avail_in = (uInt)take;
        int err;
        do {
            size_t room = 0;
            /* At the limit, inflate still takes what gives no output (the
             * empty block of a flush, say), as zlib's decompress does within
             * its last call over input it has whole: the pieces here and
             * the tail after the payload are that one input to it. */
            if (!limit || buf->size < limit) {
                if (buf->size == buf->capacity && zbuf_grow(buf, limit) < 0) {
                    return -1;
                }
                room = buf->capacity - buf->size;
                if (limit && room > limit - buf->size) {
                    room = limit - buf->size;
                }
            }
            uInt avail = room > UINT_MAX ? UINT_MAX : (uInt)room;
            zs->next_out = buf->data + buf->size;
            zs->avail_out = avail;
            err = inflate(zs, Z_SYNC_FLUSH);
            buf->size += avail - zs->avail_out;
            if (err == Z_STREAM_END) {
                size_t offset = (size_t)(zs->next_in - input);
                size_t rest = size - at - offset;  /* this call's input after the end */
                PyObject *unused = PyBytes_FromStringAndSize(NULL, rest + more);
                if (unused == NULL) {
                    return -1;
                }
                unsigned char *out = (unsigned char *)PyBytes_AS_STRING(unused);
                if (key != NULL) {
                    size_t from = at + offset;
                    unsigned char turned[4];
                    for (int k = 0; k < 4; k++) {
                        turned[k] = key[(from + k) & 3];
                    }
                    xor_mask(data + from, out, (Py_ssize_t)rest, turned);
                }
                else {
                    memcpy(out, data + at + offset, rest);
                }
                if (more) {
                    memcpy(out + rest, more_data, more);
                }
                Py_SETREF(self->unused_data, unused);
                self->eof = 1;
                return 1;
            }
            if (err != Z_OK && err != Z_BUF_ERROR) {
                zlib_fail(zs, err, "while decompressing data");
                return -1;
            }
            if (avail == 0) {
                if (zs->avail_in != 0) {
                    return 2;  /* It needs room for output: the rest stays unread. */
                }
                break;
            }
        } while (zs->avail_out == 0 || zs->avail_in != 0);
        at += take;
    }
    return 0;
}

/* Inflate `data` (masked with `key` unless NULL) and then `tail_size` bytes
 * of `tail`, as one decompress(data + tail, limit) call would. */
static int
inflate_message_into(InflaterObject *self, zbuf *buf, const unsigned char *data, size_t size,
                     const unsigned char *key, const unsigned char *tail, size_t tail_size,
                     size_t limit)
{
    if (self->eof) {
        /* As zlib's Decompress: input after the end goes to unused_data. */
        PyObject *unused = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(self->unused_data)
                                                               + size + tail_size);
        if (unused == NULL) {
            return -1;
        }
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(unused);
        size_t before = PyBytes_GET_SIZE(self->unused_data);
        memcpy(out, PyBytes_AS_STRING(self->unused_data), before);
        if (key != NULL) {
            xor_mask(data, out + before, (Py_ssize_t)size, key);
        }
        else if (size) {
            memcpy(out + before, data, size);
        }
        if (tail_size) {
            memcpy(out + before + size, tail, tail_size);
        }
        Py_SETREF(self->unused_data, unused);
        return 1;
    }
    int done = inflate_into(self, buf, data, size, key, limit, tail, tail_size);
    if (done == 0 && tail_size) {
        done = inflate_into(self, buf, tail, tail_size, NULL, limit, NULL, 0);
    }
    return done == 2 ? 0 : done;
}

static PyObject *
Inflater_decompress(InflaterObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    Py_ssize_t max_length = 0;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw < 1 || nargs + nkw > 2 || nargs < 1
        || (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0),
                                                         "max_length") != 0)) {
        PyErr_SetString(PyExc_TypeError, "decompress(data, /, max_length=0)");
        return NULL;
    }
    if (nargs + nkw == 2) {
        max_length = PyLong_AsSsize_t(args[1]);
        if (max_length == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (max_length < 0) {
            PyErr_SetString(PyExc_ValueError, "max_length must be non-negative");
            return NULL;
        }
    }
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    zbuf buf;
    zbuf_init(&buf);
    int done = inflate_message_into(self, &buf, data.buf, (size_t)data.len, NULL, NULL, 0,
                                    (size_t)max_length);
    PyBuffer_Release(&data);
    if (done < 0) {
        zbuf_release(&buf);
        return NULL;
    }
    return zbuf_bytes(&buf);
}

static PyObject *
Inflater_get_eof(InflaterObject *self, void *closure)
{
    return PyBool_FromLong(self->eof);
}

static PyObject *
Inflater_get_unused_data(InflaterObject *self, void *closure)
{
    return Py_NewRef(self->unused_data);
}

static PyGetSetDef Inflater_getset[] = {
    {"eof", (getter)Inflater_get_eof, NULL, "Whether the end of the stream was reached.",
     NULL},
    {"unused_data", (getter)Inflater_get_unused_data, NULL,
     "The bytes that came after the end of the stream.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Inflater_methods[] = {
    {"decompress", (PyCFunction)(void (*)(void))Inflater_decompress,
     METH_FASTCALL | METH_KEYWORDS,
     "decompress(data, /, max_length=0) -> bytes\n\n"
     "As zlib's Decompress.decompress, except that input left over when\n"
     "max_length is reached is dropped, not kept in an unconsumed_tail."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Inflater_doc,
"Inflater(wbits)\n\n"
"A zlib decompressor for permessage-deflate, as zlib.decompressobj(wbits) with\n"
"decompress(), eof and unused_data, which inflate_frame drives without Python\n"
"calls.");

static PyTypeObject InflaterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether._speedups.Inflater",
    .tp_basicsize = sizeof(InflaterObject),
    .tp_dealloc = (destructor)Inflater_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Inflater_doc,
    .tp_methods = Inflater_methods,
    .tp_getset = Inflater_getset,
    .tp_new = Inflater_new,
};

/* The frame of `size` bytes at `data` compressed with a Deflater: compress
 * and flush into the static area, then the frame in one allocation, masked
 * with `key` (NULL: not masked) as it is copied. */
static PyObject *
deflate_frame_bytes(DeflaterObject *encoder, unsigned char first, const unsigned char *data,
                    size_t size, const unsigned char *key)
{
    zbuf buf;
    zbuf_init(&buf);
    z_stream *zs = &encoder->zs;
    int failed = 0;
    /* The calls the Python twin makes: compress when there is data, then
     * a sync flush, so that the bytes are the same. */
    if (size) {
        failed = zbuf_deflate_all(&buf, zs, data, size);
    }
    if (!failed) {
        zs->next_in = NULL;
        zs->avail_in = 0;
        failed = zbuf_deflate(&buf, zs, Z_SYNC_FLUSH);
    }
    if (failed) {
        zbuf_release(&buf);
        return NULL;
    }
    Py_ssize_t total = (Py_ssize_t)buf.size;
    int tail = total >= 4 && memcmp(buf.data + total - 4, deflate_tail, 4) == 0;
    Py_ssize_t length = tail ? total - 4 : total + 1;
    PyObject *result = PyBytes_FromStringAndSize(NULL, header_size(length, key != NULL) + length);
    if (result != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        unsigned char *body = out + write_header(out, first, length, key);
        Py_ssize_t from_buf = tail ? length : total;
        if (key != NULL) {
            xor_mask(buf.data, body, from_buf, key);
            if (!tail) {
                body[total] = key[total & 3];  /* 0x00 masked */
            }
        }
        else {
            memcpy(body, buf.data, from_buf);
            if (!tail) {
                body[total] = 0x00;
            }
        }
    }
    zbuf_release(&buf);
    return result;
}

/* deflate_frame on a Deflater, for any bytes-like `data_object`. */
static PyObject *
deflate_frame_direct(DeflaterObject *encoder, unsigned char first, PyObject *data_object,
                     const unsigned char *key)
{
    Py_buffer data;
    if (PyObject_GetBuffer(data_object, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = deflate_frame_bytes(encoder, first, data.buf, (size_t)data.len, key);
    PyBuffer_Release(&data);
    return result;
}

/* inflate_frame on an Inflater: the payload unmasked a piece at a time, the
 * tail fed after it, the output straight into the result. */
static PyObject *
inflate_frame_direct(InflaterObject *decoder, PyObject *data_object, const unsigned char *key,
                     int tail, Py_ssize_t max_length)
{
    Py_buffer data;
    zbuf buf;
    if (PyObject_GetBuffer(data_object, &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    zbuf_init(&buf);
    int done = inflate_message_into(decoder, &buf, data.buf, (size_t)data.len, key,
                                    deflate_tail, tail ? 4 : 0, (size_t)max_length);
    PyBuffer_Release(&data);
    if (done < 0) {
        zbuf_release(&buf);
        return NULL;
    }
    return zbuf_bytes(&buf);
}

/* Whole compressed messages without Python calls. The engine's fast path
 * (read_messages) hands a frame with RSV1 to the connection's extension; when
 * that is permessage-deflate itself (the class registered by
 * register_deflate, not a subclass) and its decompressor an Inflater in the
 * middle of its stream, what PerMessageDeflate.decode_message does is done
 * here, with the same results and errors: anything else still calls it. */
static PyTypeObject *deflate_extension_type;
static PyObject *decoder_attr, *encoder_attr, *remote_no_context_attr, *local_no_context_attr,
    *restart_name, *encode_message_name, *new_decoder_name, *new_encoder_name;

/* The extension's `attr` (_encoder or _decoder), made first by its method
 * `make` (_new_encoder or _new_decoder) and kept if it is None, as
 * encode_message and _decompress make them: lazily, for the first message
 * and for each one without context takeover. A new reference, or NULL with
 * an exception. */
static PyObject *
deflate_coder(PyObject *whole, PyObject *attr, PyObject *make)
{
    PyObject *coder = PyObject_GetAttr(whole, attr);
    if (coder != Py_None) {
        return coder;
    }
    Py_DECREF(coder);
    coder = PyObject_CallMethodNoArgs(whole, make);
    if (coder != NULL && PyObject_SetAttr(whole, attr, coder) < 0) {
        Py_CLEAR(coder);
    }
    return coder;
}

PyDoc_STRVAR(register_deflate_doc,
"register_deflate(cls)\n\n"
"Name tether.extensions.permessage_deflate.PerMessageDeflate, whose whole\n"
"messages read_messages decompresses without calling decode_message.");

static PyObject *
register_deflate(PyObject *self, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "register_deflate takes a class");
        return NULL;
    }
    Py_XSETREF(deflate_extension_type, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

/* Raise ProtocolError("invalid compressed data: ...", 1007) from the
 * zlib.error being raised, as PerMessageDeflate._decompress does; any other
 * exception is left as it is. */
static void
invalid_compressed_data(void)
{
    if (!PyErr_ExceptionMatches(zlib_error_type)) {
        return;
    }
    PyObject *cause = take_exception();
    PyObject *exc = PyObject_CallFunction(protocol_error, "Ni",
                                          PyUnicode_FromFormat("invalid compressed data: %S",
                                                               cause),
                                          1007);
    if (exc == NULL) {
        Py_DECREF(cause);
        return;
    }
    PyException_SetCause(exc, cause);  /* steals cause */
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* Return the message's payload, bytes, or NULL with an exception, or
 * Py_NotImplemented (borrowed) when decode_message must be called. The
 * output stays in `buf` (its caller releases it) unless `*owned` is set to
 * a bytes object, when the stream ended and _restart went on. */
static PyObject *
inflate_whole(PyObject *whole, const unsigned char *payload, Py_ssize_t length,
              const unsigned char *key, PyObject *max_size_object, Py_ssize_t max_size,
              zbuf *buf, PyObject **owned)
{
    *owned = NULL;
    if (length == 0 || deflate_extension_type == NULL
        || !Py_IS_TYPE(whole, deflate_extension_type)) {
        return Py_NotImplemented;
    }
    PyObject *decoder = deflate_coder(whole, decoder_attr, new_decoder_name);
    if (decoder == NULL) {
        return NULL;
    }
    if (!Py_IS_TYPE(decoder, &InflaterType) || ((InflaterObject *)decoder)->eof) {
        Py_DECREF(decoder);
        return Py_NotImplemented;
    }
    /* One byte more than allowed tells "too big" apart from "exactly the limit". */
    size_t limit = max_size >= 0 ? (size_t)max_size + 1 : 0;
    int done = inflate_message_into((InflaterObject *)decoder, buf, payload, (size_t)length, key,
                                    deflate_tail, 4, limit);
    if (done == 1) {
        /* A block with BFINAL set ended the stream: _restart goes on. */
        PyObject *output = PyBytes_FromStringAndSize((const char *)buf->data, buf->size);
        if (output == NULL) {
            Py_DECREF(decoder);
            return NULL;
        }
        *owned = PyObject_CallMethodObjArgs(whole, restart_name, decoder, output, Py_True,
                                            max_size_object, NULL);
        Py_DECREF(output);
        if (*owned != NULL && !PyBytes_Check(*owned)) {
            Py_CLEAR(*owned);
            PyErr_SetString(PyExc_TypeError, "_restart did not return bytes");
        }
        done = *owned == NULL ? -1 : 0;
    }
    Py_DECREF(decoder);
    if (done < 0) {
        invalid_compressed_data();
        return NULL;
    }
    Py_ssize_t size = *owned != NULL ? PyBytes_GET_SIZE(*owned) : (Py_ssize_t)buf->size;
    if (max_size >= 0 && size > max_size) {
        /* PayloadTooBig(None, max_size), as _decompress raises it. */
        PyObject *exc = PyObject_CallFunction(payload_too_big, "On", Py_None, max_size);
        if (exc != NULL) {
            PyErr_SetObject(payload_too_big, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    PyObject *reset = PyObject_GetAttr(whole, remote_no_context_attr);
    int truth = reset == NULL ? -1 : PyObject_IsTrue(reset);
    Py_XDECREF(reset);
    if (truth < 0 || (truth && PyObject_SetAttr(whole, decoder_attr, Py_None) < 0)) {
        return NULL;
    }
    return *owned != NULL ? *owned : Py_None;
}

static PyObject *
whole_payload_direct(PyObject *whole, const unsigned char *payload, Py_ssize_t length,
                     const unsigned char *key, int text, PyObject *max_size_object,
                     Py_ssize_t max_size)
{
    zbuf buf;
    PyObject *owned;
    zbuf_init(&buf);
    PyObject *done = inflate_whole(whole, payload, length, key, max_size_object, max_size, &buf,
                                   &owned);
    PyObject *result = done;
    if (done != NULL && done != Py_NotImplemented) {
        const char *data = owned != NULL ? PyBytes_AS_STRING(owned) : (const char *)buf.data;
        Py_ssize_t size = owned != NULL ? PyBytes_GET_SIZE(owned) : (Py_ssize_t)buf.size;
        if (text) {
            result = utf8_message(data, size);
        }
        else if (owned != NULL) {
            result = Py_NewRef(owned);
        }
        else {
            result = PyBytes_FromStringAndSize(data, size);
        }
    }
    Py_XDECREF(owned);
    zbuf_release(&buf);
    return result;
}

/* What PerMessageDeflate.encode_message(first, data, key) gives, for the
 * registered class whose compressor is a Deflater, done here: the frame of
 * `size` bytes at `data`, with `first` | RSV1 and masked with `key` (NULL:
 * not masked), or NULL with an exception. Py_NotImplemented (borrowed) with
 * nothing done but the compressor made when encode_message must be called:
 * another class, or a compressor that is not a Deflater. */
static PyObject *
deflate_whole(PyObject *whole, unsigned char first, const unsigned char *data, size_t size,
              const unsigned char *key)
{
    if (deflate_extension_type == NULL || !Py_IS_TYPE(whole, deflate_extension_type)) {
        return Py_NotImplemented;
    }
    PyObject *encoder = deflate_coder(whole, encoder_attr, new_encoder_name);
    if (encoder == NULL) {
        return NULL;
    }
    if (!Py_IS_TYPE(encoder, &DeflaterType)) {
        Py_DECREF(encoder);
        return Py_NotImplemented;
    }
    /* encode_message adds RSV1. */
    PyObject *frame = deflate_frame_bytes((DeflaterObject *)encoder, first | 0x40, data, size,
                                          key);
    Py_DECREF(encoder);
    if (frame == NULL) {
        return NULL;
    }
    PyObject *reset = PyObject_GetAttr(whole, local_no_context_attr);
    int truth = reset == NULL ? -1 : PyObject_IsTrue(reset);
    Py_XDECREF(reset);
    if (truth < 0 || (truth && PyObject_SetAttr(whole, encoder_attr, Py_None) < 0)) {
        Py_DECREF(frame);
        return NULL;
    }
    return frame;
}

PyDoc_STRVAR(encode_whole_doc,
"encode_whole(whole, first, data, key) -> bytes\n\n"
"whole.encode_message(first, data, key): for permessage-deflate itself (the\n"
"registered class) whose compressor is a Deflater, done here without Python\n"
"calls; otherwise that method is called.");

static PyObject *
encode_whole(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode_whole takes 4 arguments");
        return NULL;
    }
    PyObject *whole = args[0];
    if (deflate_extension_type != NULL && Py_IS_TYPE(whole, deflate_extension_type)) {
        long first = PyLong_AsLong(args[1]);
        PyObject *key = args[3];
        if ((first == -1 && PyErr_Occurred()) || check_key(key) < 0) {
            return NULL;
        }
        if (first < 0 || first > 0xFF) {
            PyErr_SetString(PyExc_ValueError, "first header byte out of range");
            return NULL;
        }
        Py_buffer data;
        if (PyObject_GetBuffer(args[2], &data, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        PyObject *frame = deflate_whole(
            whole, (unsigned char)first, data.buf, (size_t)data.len,
            key == Py_None ? NULL : (const unsigned char *)PyBytes_AS_STRING(key));
        PyBuffer_Release(&data);
        if (frame != Py_NotImplemented) {
            return frame;
        }
    }
    return PyObject_VectorcallMethod(encode_message_name, args, 4, NULL);
}

PyDoc_STRVAR(deflate_frame_doc,
"deflate_frame(encoder, first, data, key) -> bytes\n\n"
"The frame of a whole message compressed with `encoder` (a zlib compressobj),\n"
"as tether.extensions.permessage_deflate.deflate_frame_python builds it: data\n"
"compressed and sync-flushed, the flush's trailing 00 00 ff ff removed (or 00\n"
"added when it is not there), behind the header of first byte `first`, and\n"
"masked with `key` unless it is None. One allocation for the frame.");

static PyObject *
deflate_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    PyObject *head = NULL, *rest = NULL, *result = NULL;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "deflate_frame takes 4 arguments");
        return NULL;
    }
    PyObject *encoder = args[0];
    long first = PyLong_AsLong(args[1]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (first < 0 || first > 0xFF) {
        PyErr_SetString(PyExc_ValueError, "first header byte out of range");
        return NULL;
    }
    PyObject *key = args[3];
    if (check_key(key) < 0) {
        return NULL;
    }
    if (Py_IS_TYPE(encoder, &DeflaterType)) {
        return deflate_frame_direct((DeflaterObject *)encoder, (unsigned char)first, args[2],
                                    key == Py_None ? NULL
                                                   : (const unsigned char *)PyBytes_AS_STRING(key));
    }
    if (PyObject_GetBuffer(args[2], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t size = data.len;
    PyBuffer_Release(&data);
    /* Right after a flush with no data, zlib has nothing to compress: only
     * the flush is called, as the Python twin does. */
    if (size) {
        head = zlib_bytes(PyObject_CallMethodOneArg(encoder, compress_name, args[2]));
        if (head == NULL) {
            return NULL;
        }
    }
    rest = zlib_bytes(PyObject_CallMethodOneArg(encoder, flush_name, sync_flush));
    if (rest == NULL) {
        goto done;
    }
    const unsigned char *a = head ? (const unsigned char *)PyBytes_AS_STRING(head) : NULL;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(rest);
    Py_ssize_t la = head ? PyBytes_GET_SIZE(head) : 0;
    Py_ssize_t lb = PyBytes_GET_SIZE(rest);
    Py_ssize_t total = la + lb;
    /* Whether the two pieces, end to end, end with the tail. */
    int tail = total >= 4;
    for (Py_ssize_t k = total - 4; tail && k < total; k++) {
        unsigned char byte = k < la ? a[k] : b[k - la];
        tail = byte == deflate_tail[k - (total - 4)];
    }
    Py_ssize_t length = tail ? total - 4 : total + 1;
    const unsigned char *key_bytes =
        key != Py_None ? (const unsigned char *)PyBytes_AS_STRING(key) : NULL;
    result = PyBytes_FromStringAndSize(NULL, header_size(length, key_bytes != NULL) + length);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    unsigned char *body = out + write_header(out, (unsigned char)first, length, key_bytes);
    Py_ssize_t from_head = la < length ? la : length;
    if (from_head) {
        memcpy(body, a, from_head);
    }
    if (tail) {
        memcpy(body + from_head, b, length - from_head);
    }
    else {
        memcpy(body + la, b, lb);
        body[total] = 0x00;
    }
    if (key_bytes != NULL) {
        xor_mask(body, body, length, key_bytes);
    }
done:
    Py_XDECREF(head);
    Py_XDECREF(rest);
    return result;
}

PyDoc_STRVAR(inflate_frame_doc,
"inflate_frame(decoder, data, key, tail, max_length) -> bytes\n\n"
"Decompress the payload `data` of a compressed frame with `decoder` (a zlib\n"
"decompressobj), as tether.extensions.permessage_deflate.inflate_frame_python\n"
"does: unmasked with `key` unless it is None, followed by 00 00 ff ff when\n"
"`tail` is true, and given to decoder.decompress(..., max_length) in one call.");

static PyObject *
inflate_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    PyObject *input;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "inflate_frame takes 5 arguments");
        return NULL;
    }
    PyObject *key = args[2];
    if (check_key(key) < 0) {
        return NULL;
    }
    int tail = PyObject_IsTrue(args[3]);
    if (tail < 0) {
        return NULL;
    }
    if (Py_IS_TYPE(args[0], &InflaterType)) {
        Py_ssize_t max_length = PyLong_AsSsize_t(args[4]);
        if (max_length == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (max_length < 0) {
            PyErr_SetString(PyExc_ValueError, "max_length must be non-negative");
            return NULL;
        }
        return inflate_frame_direct((InflaterObject *)args[0], args[1],
                                    key == Py_None ? NULL
                                                   : (const unsigned char *)PyBytes_AS_STRING(key),
                                    tail, max_length);
    }
    if (key == Py_None && !tail && PyBytes_CheckExact(args[1])) {
        input = Py_NewRef(args[1]);
    }
    else {
        if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        /* The copy that unmasking makes anyway takes the tail too, so
         * that zlib is called once. */
        input = PyBytes_FromStringAndSize(NULL, data.len + (tail ? 4 : 0));
        if (input != NULL) {
            unsigned char *out = (unsigned char *)PyBytes_AS_STRING(input);
            if (key == Py_None) {
                memcpy(out, data.buf, data.len);
            }
            else {
                xor_mask((const unsigned char *)data.buf, out, data.len,
                         (const unsigned char *)PyBytes_AS_STRING(key));
            }
            if (tail) {
                memcpy(out + data.len, deflate_tail, 4);
            }
        }
        PyBuffer_Release(&data);
        if (input == NULL) {
            return NULL;
        }
    }
    PyObject *call[3] = {args[0], input, args[4]};
    PyObject *result = zlib_bytes(PyObject_VectorcallMethod(decompress_name, call, 3, NULL));
    Py_DECREF(input);
    return result;
}

/* ------------------------------------------------------------------------
 * Broadcast: one shared frame written straight to many plain TCP sockets.
 *
 * tether/asyncio/direct.py decides which connections may take this path and
 * does everything else in Python. Writing to the socket ourselves, rather
 * than through transport.write(), keeps the order of bytes only when the
 * transport has nothing buffered and the engine nothing pending: both are
 * checked here per connection, on the loop's thread, before any write; the
 * sends follow, on the same thread, without the GIL.
 * ------------------------------------------------------------------------ */

#ifndef _WIN32
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
/* Where there is no such flag, Python ignores SIGPIPE anyway. */
#define MSG_NOSIGNAL 0
#endif

static PyObject *ws_protocol, *ws_transport, *ws_state, *ws_mask, *ws_frame_extensions,
    *ws_extensions, *ws_send_transformed, *ws_output, *ws_is_closing,
    *ws_get_write_buffer_size, *ws_get_extra_info, *ws_socket, *ws_fileno, *ws_write,
    *ws_gathered, *ws_no_context_takeover;

static int
ws_intern(void)
{
    if (ws_write != NULL) {
        return 0;
    }
    INTERN_ONCE(ws_protocol, "protocol");
    INTERN_ONCE(ws_transport, "transport");
    INTERN_ONCE(ws_state, "state");
    INTERN_ONCE(ws_mask, "_mask");
    INTERN_ONCE(ws_frame_extensions, "_frame_extensions");
    INTERN_ONCE(ws_extensions, "extensions");
    INTERN_ONCE(ws_send_transformed, "_send_transformed");
    INTERN_ONCE(ws_output, "_output");
    INTERN_ONCE(ws_is_closing, "is_closing");
    INTERN_ONCE(ws_get_write_buffer_size, "get_write_buffer_size");
    INTERN_ONCE(ws_get_extra_info, "get_extra_info");
    INTERN_ONCE(ws_socket, "socket");
    INTERN_ONCE(ws_fileno, "fileno");
    INTERN_ONCE(ws_gathered, "_gathered");
    INTERN_ONCE(ws_no_context_takeover, "local_no_context_takeover");
    INTERN_ONCE(ws_write, "write");
    return 0;
}

/* One socket to write to: its descriptor, and how many bytes send() took
 * (0 when it failed: the transport meets the error on its own write). */
typedef struct {
    PyObject *connection; /* a strong reference */
    int fd;
    Py_ssize_t sent;
} ws_target;

/* Send to every target. Called without the GIL. */
static void
ws_send_all(ws_target *targets, Py_ssize_t count, const char *data, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        ws_target *target = &targets[i];
        ssize_t n;
        do {
            n = send(target->fd, data, (size_t)size, MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        target->sent = n < 0 ? 0 : (Py_ssize_t)n;
    }
}

static int
ws_type_in(PyObject *object, PyObject *types)
{
    PyTypeObject *type = Py_TYPE(object);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(types); i++) {
        if ((PyObject *)type == PyTuple_GET_ITEM(types, i)) {
            return 1;
        }
    }
    return 0;
}

/* Whether `connection` may take the frame by a direct send: 1 and its
 * descriptor in *fd if so, 0 if it goes to the Python path, 2 if it is
 * skipped (not open, or its transport gone or closing), -1 on error. */
static int
ws_check(PyObject *connection, PyObject *open_state, PyObject *protocol_types,
         PyObject *transport_types, PyObject *plain_type, int *fd)
{
    PyObject *protocol = NULL, *value = NULL, *transport = NULL, *sock = NULL;
    int result = -1;
    protocol = PyObject_GetAttr(connection, ws_protocol);
    if (protocol == NULL) {
        goto done;
    }
    if ((value = PyObject_GetAttr(protocol, ws_state)) == NULL) {
        goto done;
    }
    if (value != open_state) {
        result = 2;
        goto done;
    }
    Py_CLEAR(value);
    result = 0;
    if (!ws_type_in(protocol, protocol_types)) {
        goto done;
    }
    /* The frame fits: no mask, no extension claiming every frame. */
    PyObject *flags[2] = {ws_mask, ws_frame_extensions};
    for (int i = 0; i < 2; i++) {
        if ((value = PyObject_GetAttr(protocol, flags[i])) == NULL) {
            result = -1;
            goto done;
        }
        int set = PyObject_IsTrue(value);
        Py_CLEAR(value);
        if (set != 0) {
            result = set < 0 ? -1 : 0;
            goto done;
        }
    }
    /* With a plain_type, the engine takes the plain frame only if it has no
     * extension, or one of that type that keeps its context. */
    if (plain_type != Py_None) {
        if ((value = PyObject_GetAttr(protocol, ws_extensions)) == NULL) {
            result = -1;
            goto done;
        }
        if (!PyList_CheckExact(value) || PyList_GET_SIZE(value) > 1) {
            goto done;
        }
        if (PyList_GET_SIZE(value) == 1) {
            PyObject *extension = PyList_GET_ITEM(value, 0);
            if ((PyObject *)Py_TYPE(extension) != plain_type) {
                goto done;
            }
            PyObject *alone = PyObject_GetAttr(extension, ws_no_context_takeover);
            if (alone == NULL) {
                result = -1;
                goto done;
            }
            int set = PyObject_IsTrue(alone);
            Py_DECREF(alone);
            if (set != 0) {
                result = set < 0 ? -1 : 0;
                goto done;
            }
        }
        Py_CLEAR(value);
    }
    /* No fragmented message on its way out, nothing pending in the engine. */
    if ((value = PyObject_GetAttr(protocol, ws_send_transformed)) == NULL) {
        result = -1;
        goto done;
    }
    if (value != Py_None) {
        goto done;
    }
    Py_CLEAR(value);
    if ((value = PyObject_GetAttr(protocol, ws_output)) == NULL) {
        result = -1;
        goto done;
    }
    /* None or an empty list: the engine's two ways of holding nothing. */
    if (value != Py_None && (!PyList_CheckExact(value) || PyList_GET_SIZE(value) != 0)) {
        goto done;
    }
    Py_CLEAR(value);
    /* Nor frames the connection gathered to write later in one piece. */
    if ((value = PyObject_GetAttr(connection, ws_gathered)) == NULL) {
        result = -1;
        goto done;
    }
    if (value != Py_None) {
        goto done;
    }
    Py_CLEAR(value);
    if ((transport = PyObject_GetAttr(connection, ws_transport)) == NULL) {
        result = -1;
        goto done;
    }
    if (transport == Py_None) {
        result = 2;
        goto done;
    }
    if (!ws_type_in(transport, transport_types)) {
        goto done;
    }
    if ((value = PyObject_CallMethodNoArgs(transport, ws_is_closing)) == NULL) {
        result = -1;
        goto done;
    }
    int closing = PyObject_IsTrue(value);
    Py_CLEAR(value);
    if (closing != 0) {
        result = closing < 0 ? -1 : 2;
        goto done;
    }
    /* Nothing buffered in the transport: the frame goes right after what
     * the kernel already has. */
    if ((value = PyObject_CallMethodNoArgs(transport, ws_get_write_buffer_size)) == NULL) {
        result = -1;
        goto done;
    }
    Py_ssize_t buffered = PyLong_AsSsize_t(value);
    Py_CLEAR(value);
    if (buffered != 0) {
        result = buffered == -1 && PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    sock = PyObject_CallMethodOneArg(transport, ws_get_extra_info, ws_socket);
    if (sock == NULL) {
        result = -1;
        goto done;
    }
    if (sock == Py_None) {
        goto done;
    }
    if ((value = PyObject_CallMethodNoArgs(sock, ws_fileno)) == NULL) {
        result = -1;
        goto done;
    }
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) {
        result = -1;
        goto done;
    }
    if (number >= 0 && number <= INT_MAX) {
        *fd = (int)number;
        result = 1;
    }
done:
    Py_XDECREF(value);
    Py_XDECREF(sock);
    Py_XDECREF(transport);
    Py_XDECREF(protocol);
    return result;
}

PyDoc_STRVAR(write_shared_doc,
"write_shared(connections, make_frame, open_state, protocol_types, transport_types,\n"
"             plain_type) -> (sent, rest, frame)\n\n"
"Write the bytes make_frame() returns straight to the socket of each asyncio\n"
"connection of"
" `connections` that is open (its engine's state is `open_state`), whose engine's\n"
"type is in `protocol_types` and takes a shared frame (no mask, no extension\n"
"claiming every frame; unless `plain_type` is None, no extension or only one of\n"
"type `plain_type` keeping its context; no fragmented message\n"
"being sent, no pending output), which has no gathered frames (its `_gathered`\n"
"is None) and whose transport's type is in\n"
"`transport_types`, is not closing and has nothing buffered. Connections not\n"
"open or whose transport is gone or closing are skipped. A partial write hands\n"
"the rest to transport.write(). Return how many connections were written to,\n"
"and the list of the others, left to the caller: those that did not qualify\n"
"and those whose send() wrote nothing (full socket buffer, or an error for\n"
"the transport to meet), and the frame, or None if make_frame() was not called\n"
"(no connection qualified). The sends run without the GIL.");

static PyObject *
write_shared(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "write_shared() takes 6 arguments");
        return NULL;
    }
    PyObject *open_state = args[2], *protocol_types = args[3], *transport_types = args[4];
    if (!PyTuple_Check(protocol_types) || !PyTuple_Check(transport_types)) {
        PyErr_SetString(PyExc_TypeError, "write_shared(): the types must be tuples");
        return NULL;
    }
    PyObject *plain_type = args[5];
    if (ws_intern() < 0) {
        return NULL;
    }
    Py_buffer frame = {0};
    PyObject *frame_object = NULL;
    /* A list of our own: the checks run Python code (attribute lookups,
     * the transports' methods), which could change a list we were given
     * and free the connections it held while we read it. */
    PyObject *items = PySequence_List(args[0]);
    PyObject *rest = NULL, *result = NULL;
    ws_target *targets = NULL;
    Py_ssize_t count = 0, sent = 0;
    if (items == NULL) {
        goto done;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(items);
    if ((rest = PyList_New(0)) == NULL) {
        goto done;
    }
    targets = PyMem_Malloc(sizeof(ws_target) * (size_t)(size > 0 ? size : 1));
    if (targets == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *connection = PySequence_Fast_GET_ITEM(items, i);
        int fd = -1;
        int verdict = ws_check(connection, open_state, protocol_types, transport_types,
                               plain_type, &fd);
        if (verdict < 0) {
            goto done;
        }
        if (verdict == 0 && PyList_Append(rest, connection) < 0) {
            goto done;
        }
        if (verdict == 1) {
            Py_INCREF(connection);
            targets[count].connection = connection;
            targets[count].fd = fd;
            count++;
        }
    }
    if (count > 0) {
        if ((frame_object = PyObject_CallNoArgs(args[1])) == NULL) {
            goto done;
        }
        if (PyObject_GetBuffer(frame_object, &frame, PyBUF_SIMPLE) < 0) {
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    ws_send_all(targets, count, (const char *)frame.buf, frame.len);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        ws_target *target = &targets[i];
        if (target->sent == frame.len) {
            sent++;
            continue;
        }
        if (target->sent == 0) {
            /* Nothing written: a full socket buffer, or an error the
             * transport meets on its own write. */
            if (PyList_Append(rest, target->connection) < 0) {
                goto done;
            }
            continue;
        }
        /* A partial write: the rest goes first in the transport's buffer. */
        PyObject *tail = PyBytes_FromStringAndSize((const char *)frame.buf + target->sent,
                                                   frame.len - target->sent);
        if (tail == NULL) {
            goto done;
        }
        PyObject *transport = PyObject_GetAttr(target->connection, ws_transport);
        if (transport == NULL) {
            Py_DECREF(tail);
            goto done;
        }
        PyObject *written = PyObject_CallMethodOneArg(transport, ws_write, tail);
        Py_DECREF(transport);
        Py_DECREF(tail);
        if (written == NULL) {
            goto done;
        }
        Py_DECREF(written);
        sent++;
    }
    result = Py_BuildValue("(nOO)", sent, rest, frame_object == NULL ? Py_None : frame_object);
done:
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_DECREF(targets[i].connection);
    }
    PyMem_Free(targets);
    Py_XDECREF(rest);
    Py_XDECREF(items);
    if (frame.obj != NULL) {
        PyBuffer_Release(&frame);
    }
    Py_XDECREF(frame_object);
    return result;
}
#endif /* !_WIN32 */

/* ---- Sending (the send path of issue 20) ----
 *
 * Masking keys drawn from a pool of os.urandom bytes, KEY_POOL bytes at a
 * time (as many as the Python twin's batch): the pure-Python masking_key() of tether/protocol/frames.py does the
 * same with a struct iterator, at the cost of a Python call per frame. The
 * pool is refilled only while the GIL is held, and a key is taken in one
 * step, so threads sending at once never share a key. */

#define KEY_POOL 4096  /* 4 * tether.protocol.frames._KEY_BATCH */
static unsigned char key_pool[KEY_POOL];
static Py_ssize_t key_pool_used = KEY_POOL;  /* empty until the first key */
static PyObject *os_module;  /* urandom is looked up at each refill, as Python would */

PyDoc_STRVAR(masking_key_doc,
"masking_key() -> bytes\n\n"
"A fresh random 4-byte masking key (RFC 6455 section 5.3), from os.urandom.");

/* The next key of the pool, refilled first if it is used up: 4 bytes, or
 * NULL with an exception set. The caller takes them at once (draw_key). */
static const unsigned char *
next_key(void)
{
    if (key_pool_used + 4 > KEY_POOL) {
        PyObject *fresh = PyObject_CallMethod(os_module, "urandom", "n", (Py_ssize_t)KEY_POOL);
        if (fresh == NULL) {
            return NULL;
        }
        if (!PyBytes_Check(fresh) || PyBytes_GET_SIZE(fresh) != KEY_POOL) {
            Py_DECREF(fresh);
            PyErr_SetString(PyExc_RuntimeError, "os.urandom returned the wrong size");
            return NULL;
        }
        memcpy(key_pool, PyBytes_AS_STRING(fresh), KEY_POOL);
        Py_DECREF(fresh);
        key_pool_used = 0;
    }
    return key_pool + key_pool_used;
}

/* Mark the key next_key() gave as used. */
#define draw_key() (key_pool_used += 4)

static PyObject *
masking_key(PyObject *self, PyObject *unused)
{
    const unsigned char *pooled = next_key();
    if (pooled == NULL) {
        return NULL;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)pooled, 4);
    if (key != NULL) {
        draw_key();
    }
    return key;
}

PyDoc_STRVAR(forget_keys_doc,
"forget_keys() -> None\n\n"
"Drop the keys drawn but not yet used: a forked child must not use its parent's.");

static PyObject *
forget_keys(PyObject *self, PyObject *unused)
{
    key_pool_used = KEY_POOL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------
 * The head of an opening handshake message (HTTP/1.1), read in one call.
 *
 * tether/protocol/http11.py reads a head a step at a time, and stays the
 * specification: read_request_head and read_response_head accept only heads
 * it accepts, and give what it gives. On anything else (a head not complete
 * yet, a limit passed, a malformed line, a request target in absolute form,
 * a method other than GET) they return None and change nothing, and the
 * Python parser reads the head itself, raising its precise error.
 */

#define HEAD_TCHAR 0x01   /* RFC 9110 tchar: header names and methods */
#define HEAD_VALUE 0x02   /* field values and reason phrases: HTAB, SP, VCHAR, obs-text */
#define HEAD_TARGET 0x04  /* a request target: VCHAR */
#define HEAD_REG 0x08     /* a Host's reg-name: RFC 3986 unreserved and sub-delims */
#define HEAD_LITERAL 0x10 /* inside a Host's IP literal: reg-name bytes, ':' and '%' */
#define HEAD_HEX 0x20     /* hexadecimal digits */

static unsigned char head_class[256];

static void
init_head_classes(void)
{
    const char *tchar = "!#$%&'*+-.^_`|~";
    const char *reg = "._~!$&'()*+,;=-";
    for (int c = 0; c < 256; c++) {
        unsigned char flags = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || (c && strchr(tchar, c) != NULL)) {
            flags |= HEAD_TCHAR;
        }
        if (c == '\t' || (c >= 0x20 && c != 0x7F)) {
            flags |= HEAD_VALUE;
        }
        if (c >= 0x21 && c <= 0x7E) {
            flags |= HEAD_TARGET;
        }
        if (alnum || (c && strchr(reg, c) != NULL)) {
            flags |= HEAD_REG | HEAD_LITERAL;
        }
        if (c == ':' || c == '%') {
            flags |= HEAD_LITERAL;
        }
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
            flags |= HEAD_HEX;
        }
        head_class[c] = flags;
    }
}

/* A limit given as a non-negative int; one past Py_ssize_t is no limit at all. */
static int
head_limit(PyObject *arg, Py_ssize_t *limit)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0 || value > PY_SSIZE_T_MAX) {
        *limit = PY_SSIZE_T_MAX;
        return 0;
    }
    if (value < 0 || overflow < 0) {
        PyErr_SetString(PyExc_ValueError, "limits must be positive or zero");
        return -1;
    }
    *limit = (Py_ssize_t)value;
    return 0;
}

/* Whether `s` matches http11._HOST whole: an IP literal in brackets or a
 * reg-name (percent-encoded bytes allowed), then an optional ":port". */
static int
head_host_ok(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n && s[0] == '[') {
        for (i = 1; i < n && (head_class[s[i]] & HEAD_LITERAL); i++) {
        }
        if (i == 1 || i == n || s[i] != ']') {
            return 0;
        }
        i++;
    }
    else {
        while (i < n) {
            if (head_class[s[i]] & HEAD_REG) {
                i++;
            }
            else if (s[i] == '%' && i + 2 < n && (head_class[s[i + 1]] & HEAD_HEX)
                     && (head_class[s[i + 2]] & HEAD_HEX)) {
                i += 3;
            }
            else {
                break;
            }
        }
    }
    if (i < n) {
        if (s[i] != ':') {
            return 0;
        }
        for (i++; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return 0;
            }
        }
    }
    return 1;
}

/* Whether the `n` bytes at `s` spell `lower` (lower case), ignoring ASCII case. */
static int
head_name_is(const unsigned char *s, Py_ssize_t n, const char *lower, Py_ssize_t size)
{
    if (n != size) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        if (c != (unsigned char)lower[i]) {
            return 0;
        }
    }
    return 1;
}

/* The shared strings: those of the tuple `common` last given, with their
 * bytes, so that a string is found without being made and hashed first.
 * The tuple is kept: its strings stay alive and its identity its own. */
struct head_shared {
    Py_ssize_t size;
    const unsigned char *bytes;
    PyObject *text;
};
static PyObject *head_common;
static struct head_shared *head_table;
static Py_ssize_t head_table_size;

static int
head_share(PyObject *common)
{
    if (common == head_common) {
        return 0;
    }
    if (!PyTuple_Check(common)) {
        PyErr_SetString(PyExc_TypeError, "common must be a tuple of str");
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(common);
    struct head_shared *table = PyMem_Malloc(sizeof(struct head_shared) * (count ? count : 1));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyTuple_GET_ITEM(common, i);
        if (!PyUnicode_Check(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
            PyMem_Free(table);
            PyErr_SetString(PyExc_TypeError, "common must be a tuple of latin-1 str");
            return -1;
        }
        table[i].size = PyUnicode_GET_LENGTH(text);
        table[i].bytes = PyUnicode_1BYTE_DATA(text);
        table[i].text = text;
    }
    PyMem_Free(head_table);
    head_table = table;
    head_table_size = count;
    Py_INCREF(common);
    Py_XSETREF(head_common, common);
    return 0;
}

/* The text of `n` latin-1 bytes: the shared string when one is equal. */
static PyObject *
head_text(const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < head_table_size; i++) {
        const struct head_shared *entry = &head_table[i];
        if (entry->size == n && memcmp(entry->bytes, s, n) == 0) {
            return Py_NewRef(entry->text);
        }
    }
    return PyUnicode_DecodeLatin1((const char *)s, n, NULL);
}

/* The header lines from buf[pos:] to the blank line ending the head, which
 * must end within the first `size` bytes: the list of (name, value) fields,
 * with *end set past the blank line. Py_None when the Python parser must
 * read them (the blank line does not come in time, a line is malformed or
 * too long, there are too many, or, with `request`, a Host is malformed,
 * Transfer-Encoding or a Content-Length other than one "0" comes); NULL
 * with an exception set on failure. */
static PyObject *
head_fields(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t size, Py_ssize_t max_line,
            Py_ssize_t max_headers, int request, Py_ssize_t *end)
{
    PyObject *fields = PyList_New(0);
    int lengths = 0;
    if (fields == NULL) {
        return NULL;
    }
    for (;;) {
        const unsigned char *lf = memchr(buf + pos, '\n', size - pos);
        if (lf == NULL) {
            goto python;
        }
        Py_ssize_t stop = lf - buf - 1;  /* where the CR must be */
        if (stop < pos || buf[stop] != '\r') {
            goto python;
        }
        if (stop == pos) {
            *end = stop + 2;
            return fields;
        }
        if (stop - pos > max_line || PyList_GET_SIZE(fields) >= max_headers) {
            goto python;
        }
        Py_ssize_t colon = pos;
        while (colon < stop && (head_class[buf[colon]] & HEAD_TCHAR)) {
            colon++;
        }
        if (colon == pos || colon == stop || buf[colon] != ':') {
            goto python;
        }
        for (Py_ssize_t i = colon + 1; i < stop; i++) {
            if (!(head_class[buf[i]] & HEAD_VALUE)) {
                goto python;
            }
        }
        Py_ssize_t first = colon + 1, last = stop;
        while (first < last && (buf[first] == ' ' || buf[first] == '\t')) {
            first++;
        }
        while (last > first && (buf[last - 1] == ' ' || buf[last - 1] == '\t')) {
            last--;
        }
        if (request) {
            const unsigned char *name = buf + pos, *value = buf + first;
            Py_ssize_t length = colon - pos, count = last - first;
            if (head_name_is(name, length, "host", 4)) {
                if (!head_host_ok(value, count)) {
                    goto python;
                }
            }
            else if (head_name_is(name, length, "content-length", 14)) {
                if (++lengths > 1 || count != 1 || value[0] != '0') {
                    goto python;
                }
            }
            else if (head_name_is(name, length, "transfer-encoding", 17)) {
                goto python;
            }
        }
        PyObject *name = head_text(buf + pos, colon - pos);
        PyObject *value = name == NULL ? NULL : head_text(buf + first, last - first);
        PyObject *field = value == NULL ? NULL : PyTuple_New(2);
        if (field == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(fields);
            return NULL;
        }
        PyTuple_SET_ITEM(field, 0, name);
        PyTuple_SET_ITEM(field, 1, value);
        int appended = PyList_Append(fields, field);
        Py_DECREF(field);
        if (appended < 0) {
            Py_DECREF(fields);
            return NULL;
        }
        pos = stop + 2;
    }
python:
    Py_DECREF(fields);
    Py_RETURN_NONE;
}

/* The arguments both readers share: the buffer, the three limits and the
 * tuple of shared strings. The head must end within the first *size bytes. */
static int
head_arguments(PyObject *const *args, Py_buffer *view, Py_ssize_t *size, Py_ssize_t *max_line,
               Py_ssize_t *max_headers)
{
    Py_ssize_t max_size;
    if (head_limit(args[1], max_line) < 0 || head_limit(args[2], max_headers) < 0
        || head_limit(args[3], &max_size) < 0 || head_share(args[4]) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    *size = view->len < max_size ? view->len : max_size;
    return 0;
}

/* The length of the start line of buf[:size] without its CRLF, or -1 when it
 * is not complete, ends with a bare LF or is longer than max_line. */
static Py_ssize_t
head_start_line(const unsigned char *buf, Py_ssize_t size, Py_ssize_t max_line)
{
    const unsigned char *lf = memchr(buf, '\n', size);
    if (lf == NULL) {
        return -1;
    }
    Py_ssize_t length = lf - buf - 1;
    if (length < 0 || buf[length] != '\r' || length > max_line) {
        return -1;
    }
    return length;
}

/* The start line of a request, checked as head_start_line measured it:
 * GET SP origin-form SP HTTP/1.1, whose target has no space, so that the
 * line has exactly three parts. Put the path in parts; return how many parts
 * (1), 0 to leave the head to the Python parser, -1 with an exception set. */
static int
head_request_line(const unsigned char *buf, Py_ssize_t length, int proxy, PyObject **parts)
{
    (void)proxy;
    if (length < 14 || memcmp(buf, "GET /", 5) != 0
        || memcmp(buf + length - 9, " HTTP/1.1", 9) != 0) {
        return 0;
    }
    for (Py_ssize_t i = 5; i < length - 9; i++) {
        if (!(head_class[buf[i]] & HEAD_TARGET)) {
            return 0;
        }
    }
    parts[0] = PyUnicode_DecodeASCII((const char *)buf + 4, length - 13, NULL);
    return parts[0] == NULL ? -1 : 1;
}

/* The status line of a response, as head_request_line: HTTP-version SP
 * 3DIGIT, then SP reason-phrase or nothing; HTTP/1.0 too with proxy. Put the
 * status code and the reason phrase in parts (2). */
static int
head_status_line(const unsigned char *buf, Py_ssize_t length, int proxy, PyObject **parts)
{
    if (length < 12
        || !(memcmp(buf, "HTTP/1.1 ", 9) == 0 || (proxy && memcmp(buf, "HTTP/1.0 ", 9) == 0))
        || buf[9] < '1' || buf[9] > '9' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0'
        || buf[11] > '9' || (length > 12 && buf[12] != ' ')) {
        return 0;
    }
    Py_ssize_t reason = length > 12 ? 13 : 12;
    for (Py_ssize_t i = reason; i < length; i++) {
        if (!(head_class[buf[i]] & HEAD_VALUE)) {
            return 0;
        }
    }
    long code = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    parts[0] = PyLong_FromLong(code);
    if (parts[0] == NULL) {
        return -1;
    }
    parts[1] = PyUnicode_DecodeLatin1((const char *)buf + reason, length - reason, NULL);
    return parts[1] == NULL ? -1 : 2;
}

/* What read_request_head and read_response_head share: the arguments (the
 * response's sixth says whether a proxy answers), the start line, the fields,
 * and the tuple of the start line's parts, the fields and the offset past
 * the head. */
static PyObject *
read_head(PyObject *const *args, Py_ssize_t nargs, const char *name, int request)
{
    Py_buffer view;
    Py_ssize_t size, max_line, max_headers, end;
    Py_ssize_t expected = request ? 5 : 6;

    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments", name, expected);
        return NULL;
    }
    int proxy = request ? 0 : PyObject_IsTrue(args[5]);
    if (proxy < 0 || head_arguments(args, &view, &size, &max_line, &max_headers) < 0) {
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    PyObject *result = NULL;
    PyObject *parts[2] = {NULL, NULL};
    Py_ssize_t length = head_start_line(buf, size, max_line);
    int count = (request ? head_request_line : head_status_line)(buf, length, proxy, parts);
    if (count <= 0) {
        result = count < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    PyObject *fields = head_fields(buf, length + 2, size, max_line, max_headers, request, &end);
    if (fields == NULL || fields == Py_None) {
        result = fields;
        goto done;
    }
    PyObject *offset = PyLong_FromSsize_t(end);
    result = offset == NULL ? NULL : PyTuple_New(count + 2);
    if (result == NULL) {
        Py_XDECREF(offset);
        Py_DECREF(fields);
        goto done;
    }
    for (int i = 0; i < count; i++) {
        PyTuple_SET_ITEM(result, i, parts[i]);
        parts[i] = NULL;
    }
    PyTuple_SET_ITEM(result, count, fields);
    PyTuple_SET_ITEM(result, count + 1, offset);
done:
    Py_XDECREF(parts[0]);
    Py_XDECREF(parts[1]);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(read_request_head_doc,
"read_request_head(buf, max_line, max_headers, max_size, common)\n--\n\n"
"Read the opening handshake request at the start of buf in one call, as\n"
"tether.protocol.http11.RequestParser reads it: return (path, fields, end),\n"
"fields being the (name, value) pairs, each string that equals one of the\n"
"tuple common being that one, and end the offset past the head; or None when the\n"
"head is incomplete, invalid, past a limit, has a target in absolute form or\n"
"a method other than GET, for the Python parser to read.");

static PyObject *
read_request_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return read_head(args, nargs, "read_request_head", 1);
}

PyDoc_STRVAR(read_response_head_doc,
"read_response_head(buf, max_line, max_headers, max_size, common, proxy)\n--\n\n"
"Read the head of the handshake response at the start of buf in one call, as\n"
"tether.protocol.http11.ResponseParser reads it: return (status_code,\n"
"reason_phrase, fields, end), as read_request_head does; or None when the head\n"
"is incomplete, invalid or past a limit, for the Python parser to read. With\n"
"proxy true, HTTP/1.0 is accepted too.");

static PyObject *
read_response_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return read_head(args, nargs, "read_response_head", 0);
}

/* ---- Compressed messages on the one-call paths (issue 20) ----
 *
 * receive_messages, deliver_messages and message_frame below take the
 * messages of a connection whose only extension takes whole messages
 * (Connection._whole: permessage-deflate) as they take plain ones: a
 * message compressed in one frame is inflated (whole_payload) or deflated
 * (deflate_whole) within the same call. What differs from plain frames:
 * - a compressed frame is consumed whatever comes of it (its decompressor
 *   moved on), so its errors cannot be left to the engine's general path to
 *   find again: invalid data or a message over max_size fails the engine
 *   here, as receive_data would (whole_message);
 * - one read may inflate into many messages, so at most as many are taken
 *   as the queue has room for (queue_room), as the engine's message_budget
 *   bounds them on the general path.
 * The Python twins are Connection.take_messages and Connection.message_frame
 * in tether/protocol/connection.py, and deliver_messages_python in
 * tether/asyncio/listener.py. */

static PyObject *fail_with_name, *full_at_name, *ready_name;

/* The bound on a compressed frame's payload for messages of at most
 * `max_size` bytes, as compressed_frame_limit: deflate may grow
 * incompressible data a little. */
TETHER_INLINE unsigned long long
compressed_limit(Py_ssize_t max_size)
{
    return (unsigned long long)max_size + (unsigned long long)(max_size >> 10) + 64;
}

/* The names used below: 0, or -1 with an exception. */
static int
whole_names(void)
{
    if (fail_with_name == NULL
        && ((full_at_name = PyUnicode_InternFromString("full_at")) == NULL
            || (ready_name = PyUnicode_InternFromString("ready")) == NULL
            || (fail_with_name = PyUnicode_InternFromString("_fail_with")) == NULL)) {
        return -1;
    }
    return 0;
}

/* The message of the compressed frame at `payload` (masked with `key`
 * unless NULL) of `engine`, through its extension `whole`: str for text,
 * bytes otherwise (see whole_payload; `bound` is the engine's bound as an
 * object, `max_size` as a number). NULL with no exception set when the
 * frame failed the engine (invalid compressed data or UTF-8: 1007; a
 * message over max_size: 1009) by its _fail_with, as receive_data fails it;
 * NULL with an exception for anything else. Call whole_names() first. */
static PyObject *
whole_message(PyObject *engine, PyObject *whole, const unsigned char *payload,
              Py_ssize_t length, const unsigned char *key, int text, PyObject *bound,
              Py_ssize_t max_size)
{
    PyObject *data = whole_payload(whole, payload, length, key, text, bound, max_size);
    if (data != NULL
        || !(PyErr_ExceptionMatches(protocol_error) || PyErr_ExceptionMatches(payload_too_big))) {
        return data;
    }
    PyObject *exc = take_exception();
    PyObject *done = PyObject_CallMethodOneArg(engine, fail_with_name, exc);
    Py_DECREF(exc);
    Py_XDECREF(done);
    return NULL;
}

/* The free room of a MessageQueue, at least 0: how many more messages one
 * read may inflate into (parse_budget's number on an open connection; a
 * queue without a bound has sys.maxsize as full_at). -1 with an exception. */
static Py_ssize_t
queue_room(PyObject *queue)
{
    if (whole_names() < 0) {
        return -1;
    }
    PyObject *full_at = PyObject_GetAttr(queue, full_at_name);
    if (full_at == NULL) {
        return -1;
    }
    Py_ssize_t full = PyLong_AsSsize_t(full_at);
    Py_DECREF(full_at);
    if (full == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *ready_object = PyObject_GetAttr(queue, ready_name);
    if (ready_object == NULL) {
        return -1;
    }
    Py_ssize_t ready = PyLong_AsSsize_t(ready_object);
    Py_DECREF(ready_object);
    if (ready == -1 && PyErr_Occurred()) {
        return -1;
    }
    return full > ready ? full - ready : 0;
}

/* The frame of one whole message sent through `whole`: `length` bytes at
 * `payload` (the UTF-8 or the bytes of `data`, a str or bytes), first byte
 * `first` without RSV1, masked with a fresh key if `masked`. What
 * encode_whole(whole, first, payload, key) gives; NULL with an exception. */
static PyObject *
whole_message_frame(PyObject *whole, unsigned char first, PyObject *data, const char *payload,
                    Py_ssize_t length, int masked)
{
    unsigned char key[4];
    if (masked) {
        /* Taken now: encode_message, in Python, may draw keys too. */
        const unsigned char *pooled = next_key();
        if (pooled == NULL) {
            return NULL;
        }
        memcpy(key, pooled, 4);
        draw_key();
    }
    PyObject *frame = deflate_whole(whole, first, (const unsigned char *)payload, (size_t)length,
                                    masked ? key : NULL);
    if (frame != Py_NotImplemented) {
        return frame;
    }
    PyObject *bytes = PyBytes_CheckExact(data)
                          ? Py_NewRef(data)
                          : PyBytes_FromStringAndSize(payload, length);
    PyObject *first_object = PyLong_FromLong(first);
    PyObject *key_object = masked ? PyBytes_FromStringAndSize((const char *)key, 4)
                                  : Py_NewRef(Py_None);
    if (bytes != NULL && first_object != NULL && key_object != NULL) {
        PyObject *call[4] = {whole, first_object, bytes, key_object};
        frame = PyObject_VectorcallMethod(encode_message_name, call, 4, NULL);
    }
    else {
        frame = NULL;
    }
    Py_XDECREF(bytes);
    Py_XDECREF(first_object);
    Py_XDECREF(key_object);
    return frame;
}

/* ---- Listener connections (tether.asyncio.listener) ----
 *
 * A listener connection hands each message of a read to its listener's
 * on_message as soon as it is parsed: no event, no queue. */

/* The engine's fields that deliver_messages reads, kept in slots: their
 * offsets are found once per engine type (a few types at most: the server's
 * and the client's engines), and read directly, as new_frame writes a
 * Frame's. */
#define LS_FIELDS 7
#define LS_TYPES 4
static const char *const ls_fields[LS_FIELDS] = {
    "_buffer",       "_partial",       "_msg_text", "_input_done",
    "_expect_mask",  "_fast_max_size", "_whole"};
static struct {
    PyTypeObject *type;
    Py_ssize_t offsets[LS_FIELDS];
} ls_layouts[LS_TYPES];

/* The offsets of the fields for `engine`'s type, or NULL (no exception set)
 * if they are not all slots or too many types came. */
static const Py_ssize_t *
ls_offsets(PyObject *engine)
{
    PyTypeObject *type = Py_TYPE(engine);
    int free_entry = -1;
    for (int i = 0; i < LS_TYPES; i++) {
        if (ls_layouts[i].type == type) {
            return ls_layouts[i].offsets;
        }
        if (ls_layouts[i].type == NULL && free_entry < 0) {
            free_entry = i;
        }
    }
    if (free_entry < 0) {
        return NULL;
    }
    Py_ssize_t offsets[LS_FIELDS];
    for (int k = 0; k < LS_FIELDS; k++) {
        if (slot_offset((PyObject *)type, "the engine", ls_fields[k], &offsets[k]) < 0) {
            PyErr_Clear();
            return NULL;
        }
    }
    Py_INCREF(type);
    ls_layouts[free_entry].type = type;
    memcpy(ls_layouts[free_entry].offsets, offsets, sizeof(offsets));
    return ls_layouts[free_entry].offsets;
}

/* 1 if `value` is true, 0 if false, -1 on error: the bool singletons first. */
static int
ls_true(PyObject *value)
{
    return value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
}

PyDoc_STRVAR(deliver_messages_doc,
"deliver_messages(engine, data, on_message, connection, limit=None)\n--\n\n"
"Hand the whole messages at the start of `data` that each came in one plain\n"
"frame, or compressed in one frame through the engine's only extension, to\n"
"on_message(connection, message), one by one, at most `limit` of them, as\n"
"tether.asyncio.listener.deliver_messages_python does. Return how many bytes\n"
"they took, for the engine to read the rest; -1, with nothing done, if the\n"
"engine is not between frames with nothing buffered; or, if on_message\n"
"raised an Exception, a tuple of the bytes taken up to that message included\n"
"and the exception. Any other exception (KeyboardInterrupt, SystemExit) is\n"
"raised on. A compressed message that fails the engine ends the messages\n"
"taken before its frame.");

static PyObject *
deliver_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "deliver_messages takes 4 or 5 arguments");
        return NULL;
    }
    PyObject *engine = args[0], *on_message = args[2], *connection = args[3];
    /* -1: no bound. */
    Py_ssize_t limit = nargs == 5 ? size_bound(args[4]) : -1;
    if (limit == -2) {
        return NULL;
    }
    const Py_ssize_t *offsets = ls_offsets(engine);
    if (offsets == NULL) {
        /* Not an engine whose fields are plain slots: the engine reads it all. */
        return PyLong_FromLong(-1);
    }
    PyObject *fields[LS_FIELDS];
    for (int k = 0; k < LS_FIELDS; k++) {
        fields[k] = *(PyObject **)((char *)engine + offsets[k]);
        if (fields[k] == NULL) {
            return PyLong_FromLong(-1);
        }
    }
    /* Between frames and messages, nothing buffered, input not over. */
    Py_ssize_t buffered = PyByteArray_CheckExact(fields[0]) ? PyByteArray_GET_SIZE(fields[0])
                                                            : PyObject_Length(fields[0]);
    if (buffered != 0 || fields[1] != Py_None || fields[2] != Py_None) {
        return buffered < 0 ? NULL : PyLong_FromLong(-1);
    }
    int done = ls_true(fields[3]);
    int expect_mask = ls_true(fields[4]);
    if (done != 0 || expect_mask < 0) {
        return done < 0 || expect_mask < 0 ? NULL : PyLong_FromLong(-1);
    }
    /* -1: no bound. */
    Py_ssize_t max_size = size_bound(fields[5]);
    if (max_size == -2) {
        return NULL;
    }
    /* Held: on_message runs Python code between two messages. */
    PyObject *whole = fields[6] == Py_None ? NULL : Py_NewRef(fields[6]);
    PyObject *bound = Py_NewRef(fields[5]);
    if (whole != NULL && whole_names() < 0) {
        Py_DECREF(whole);
        Py_DECREF(bound);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        Py_XDECREF(whole);
        Py_DECREF(bound);
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len, pos = 0, count = 0;
    PyObject *result = NULL;
    while (pos < end && count != limit) {
        const unsigned char *frame = buf + pos;
        Py_ssize_t available = end - pos;
        /* FIN set, no RSV bit, text or binary, the expected masking: a
         * message in one plain frame; with RSV1 too, one for `whole`.
         * Anything else is the engine's. */
        int compressed = whole != NULL && (frame[0] == 0xC1 || frame[0] == 0xC2);
        if (available < 2 || (frame[0] != 0x81 && frame[0] != 0x82 && !compressed)
            || (frame[1] >> 7) != expect_mask) {
            break;
        }
        unsigned long long length = frame[1] & 0x7F;
        Py_ssize_t size = 2;
        if (length == 126) {
            if (available < 4) {
                break;
            }
            length = ((unsigned long long)frame[2] << 8) | frame[3];
            size = 4;
        }
        else if (length == 127) {
            if (available < 10 || (frame[2] & 0x80)) {
                break;
            }
            length = 0;
            for (int k = 2; k < 10; k++) {
                length = (length << 8) | frame[k];
            }
            size = 10;
        }
        const unsigned char *key = NULL;
        if (expect_mask) {
            key = frame + size;
            size += 4;
        }
        if (available < size || length > (unsigned long long)(available - size)
            || (max_size >= 0 && length > (compressed ? compressed_limit(max_size)
                                                      : (unsigned long long)max_size))) {
            break;
        }
        /* NULL without an exception: text that is not UTF-8, the engine's to
         * fail; or a compressed message that failed the engine. */
        PyObject *data =
            compressed ? whole_message(engine, whole, frame + size, (Py_ssize_t)length, key,
                                       frame[0] == 0xC1, bound, max_size)
                       : frame_payload(frame + size, (Py_ssize_t)length, key, frame[0] == 0x81);
        if (data == NULL) {
            if (PyErr_Occurred()) {
                goto done;
            }
            break;
        }
        pos += size + (Py_ssize_t)length;
        count++;
        PyObject *call[2] = {connection, data};
        PyObject *returned = PyObject_Vectorcall(on_message, call, 2, NULL);
        Py_DECREF(data);
        if (returned == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                /* KeyboardInterrupt, SystemExit, CancelledError: raised on,
                 * as the Python twin lets them through. */
                goto done;
            }
            PyObject *exc = take_exception();
            result = Py_BuildValue("(nN)", pos, exc);
            goto done;
        }
        Py_DECREF(returned);
    }
    result = PyLong_FromSsize_t(pos);
done:
    PyBuffer_Release(&view);
    Py_XDECREF(whole);
    Py_DECREF(bound);
    return result;
}

/* ---------------------------------------------------------------------------
 * The connection core (issue 20): a read's whole messages straight into the
 * message queue, and one message's frame, each in one call.
 *
 * The pure-Python twins, which stay the specification and the fallback, are
 * Connection.take_messages and Connection.message_frame in
 * tether/protocol/connection.py, and receive_messages_python in
 * tether/messages.py. Both functions do their work only in the common case
 * and otherwise do nothing, leaving the engine's general path to do it.
 * They read the engine's and the queue's fields in their slots, at offsets
 * found once from the classes; the classes are looked up at the first call,
 * when the modules are imported (importing them here would be a cycle).
 * ------------------------------------------------------------------------- */

/* The engine's fields, in the order of engine_fields. */
enum {
    E_STATE, E_INPUT_DONE, E_BUFFER, E_PARTIAL, E_MSG_TEXT, E_BUDGET, E_EXTENSIONS,
    E_EVENTS, E_EXPECT_MASK, E_FAST_MAX_SIZE, E_SEND_TRANSFORMED, E_OUTPUT, E_MASK,
    E_WHOLE, E_COUNT
};
static const char *const engine_fields[E_COUNT] = {
    "state", "_input_done", "_buffer", "_partial", "_msg_text", "message_budget",
    "extensions", "_events", "_expect_mask", "_fast_max_size", "_send_transformed",
    "_output", "_mask", "_whole",
};
static Py_ssize_t engine_offsets[E_COUNT];
static Py_ssize_t queue_items_offset, queue_ready_offset;

static PyTypeObject *core_engine_type;  /* tether.protocol.connection.Connection */
static PyTypeObject *core_queue_type;   /* tether.messages.MessageQueue */
static PyObject *core_open;             /* State.OPEN */
static PyObject *core_deque;            /* collections.deque */
/* deque's append and popleft, called on an exact deque without looking
 * them up by name per message. */
static PyObject *deque_append, *deque_popleft;
/* The engine's own methods: a class that overrides one of them (frame
 * logging does) takes the general path. */
static PyObject *core_receive_data, *core_send_message, *core_data_to_send;
static PyObject *receive_data_name, *send_message_name, *data_to_send_name, *append_name,
    *popleft_name, *done_name, *set_result_name;

/* A field of `object` kept in a slot at `offset`: a borrowed reference, or
 * NULL when it is unset. */
#define SLOT(object, offset) (*(PyObject **)((char *)(object) + (offset)))

static PyObject *
core_attribute(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

/* Find the classes, their slots and the names: 0, or -1 with an exception. */
static int
core_init(void)
{
    if (core_engine_type != NULL) {
        return 0;
    }
    INTERN_ONCE(receive_data_name, "receive_data");
    INTERN_ONCE(send_message_name, "send_message");
    INTERN_ONCE(data_to_send_name, "data_to_send");
    INTERN_ONCE(append_name, "append");
    INTERN_ONCE(popleft_name, "popleft");
    INTERN_ONCE(done_name, "done");
    INTERN_ONCE(set_result_name, "set_result");
    PyObject *engine = NULL, *queue = NULL, *open = NULL, *deque = NULL;
    PyObject *methods[3] = {NULL, NULL, NULL};
    Py_ssize_t offsets[E_COUNT], items, ready;
    if ((engine = core_attribute("tether.protocol.connection", "Connection")) == NULL
        || (open = core_attribute("tether.protocol.connection", "_OPEN")) == NULL
        || (queue = core_attribute("tether.messages", "MessageQueue")) == NULL
        || (deque = core_attribute("collections", "deque")) == NULL) {
        goto failed;
    }
    if (!PyType_Check(engine) || !PyType_Check(queue)) {
        PyErr_SetString(PyExc_TypeError, "the engine and the queue must be classes");
        goto failed;
    }
    for (int i = 0; i < E_COUNT; i++) {
        if (slot_offset(engine, "Connection", engine_fields[i], &offsets[i]) < 0) {
            goto failed;
        }
    }
    if (slot_offset(queue, "MessageQueue", "_items", &items) < 0
        || slot_offset(queue, "MessageQueue", "ready", &ready) < 0) {
        goto failed;
    }
    PyObject *names[3] = {receive_data_name, send_message_name, data_to_send_name};
    for (int i = 0; i < 3; i++) {
        if ((methods[i] = PyObject_GetAttr(engine, names[i])) == NULL) {
            goto failed;
        }
    }
    memcpy(engine_offsets, offsets, sizeof offsets);
    queue_items_offset = items;
    queue_ready_offset = ready;
    core_queue_type = (PyTypeObject *)queue;
    core_open = open;
    core_deque = deque;
    deque_append = Py_XNewRef(_PyType_Lookup((PyTypeObject *)deque, append_name));
    deque_popleft = Py_XNewRef(_PyType_Lookup((PyTypeObject *)deque, popleft_name));
    core_receive_data = methods[0];
    core_send_message = methods[1];
    core_data_to_send = methods[2];
    core_engine_type = (PyTypeObject *)engine;  /* last: the mark of success */
    return 0;
failed:
    Py_XDECREF(engine);
    Py_XDECREF(queue);
    Py_XDECREF(open);
    Py_XDECREF(deque);
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(methods[i]);
    }
    return -1;
}

/* Whether `engine`'s class has `name` as the engine's own `method`. */
TETHER_INLINE int
core_own_method(PyObject *engine, PyObject *name, PyObject *method)
{
    return _PyType_Lookup(Py_TYPE(engine), name) == method;
}

/* Whether `engine` is open with nothing under way on the receiving side, as
 * Connection.take_messages checks it; an extension only if it takes whole
 * messages (_whole). */
static int
engine_takes_messages(PyObject *engine)
{
#define FIELD(index) SLOT(engine, engine_offsets[index])
    PyObject *buffer = FIELD(E_BUFFER), *extensions = FIELD(E_EXTENSIONS),
             *events = FIELD(E_EVENTS), *whole = FIELD(E_WHOLE);
    return FIELD(E_STATE) == core_open && FIELD(E_INPUT_DONE) == Py_False
           && buffer != NULL
           && ((PyByteArray_CheckExact(buffer) && PyByteArray_GET_SIZE(buffer) == 0)
               || (PyBytes_CheckExact(buffer) && PyBytes_GET_SIZE(buffer) == 0))
           && FIELD(E_PARTIAL) == Py_None
           && FIELD(E_MSG_TEXT) == Py_None && FIELD(E_BUDGET) == Py_None
           && extensions != NULL && PyList_CheckExact(extensions)
           && (PyList_GET_SIZE(extensions) == 0 || (whole != NULL && whole != Py_None))
           && events != NULL
           && (events == Py_None
               || (PyList_CheckExact(events) && PyList_GET_SIZE(events) == 0))
           && core_own_method(engine, receive_data_name, core_receive_data);
#undef FIELD
}

/* Append a whole message to the queue's items, made on the first message as
 * MessageQueue.extend_whole makes them: 0, or -1 with an exception. The
 * queue keeps a whole message as its data alone; `message` is that data,
 * or a Message event, whose data is taken. */
static int
queue_append(PyObject *queue, PyObject *message)
{
    if (Py_TYPE(message) == message_type) {
        message = SLOT(message, message_data_offset);
    }
    PyObject *items = SLOT(queue, queue_items_offset);
    if (items == Py_None) {
        PyObject *fresh = PyObject_CallNoArgs(core_deque);
        if (fresh == NULL) {
            return -1;
        }
        SLOT(queue, queue_items_offset) = fresh;
        Py_DECREF(items);
        items = fresh;
    }
    PyObject *args[2] = {items, message};
    PyObject *done = deque_append != NULL && Py_TYPE(items) == (PyTypeObject *)core_deque
                         ? PyObject_Vectorcall(deque_append, args, 2, NULL)
                         : PyObject_CallMethodOneArg(items, append_name, message);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    return 0;
}

/* Add `count` to the queue's count of whole messages: 0, or -1. */
static int
queue_count(PyObject *queue, Py_ssize_t count)
{
    PyObject *ready = SLOT(queue, queue_ready_offset);
    Py_ssize_t before = PyLong_AsSsize_t(ready);
    if (before == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *after = PyLong_FromSsize_t(before + count);
    if (after == NULL) {
        return -1;
    }
    SLOT(queue, queue_ready_offset) = after;
    Py_DECREF(ready);
    return 0;
}

/* asyncio.Future and its own done and set_result, found when the asyncio
 * connection's methods are made (connection_init): a waiter of exactly that
 * type is woken through them, without looking them up by name. */
static PyTypeObject *wake_future_type;
static PyObject *future_done, *future_set_result;

/* Wake `waiter`, a future or None, unless it is done: 0, or -1. */
static int
wake(PyObject *waiter)
{
    if (waiter == Py_None) {
        return 0;
    }
    int exact = wake_future_type != NULL && Py_TYPE(waiter) == wake_future_type;
    PyObject *args[2] = {waiter, Py_None};
    PyObject *done = exact ? PyObject_Vectorcall(future_done, args, 1, NULL)
                           : PyObject_CallMethodNoArgs(waiter, done_name);
    if (done == NULL) {
        return -1;
    }
    int finished = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (finished != 0) {
        return finished;
    }
    PyObject *result = exact ? PyObject_Vectorcall(future_set_result, args, 2, NULL)
                             : PyObject_CallMethodOneArg(waiter, set_result_name, Py_None);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* ---------------------------------------------------------------------------
 * The direct wake (issue 20): a connection's read wakes the task waiting in
 * recv() or `async for` by running its wake-up right there, in the task's
 * context, rather than through set_result's call_soon (a handle, and a pass
 * of the loop's ready queue before the task runs). See
 * tether.asyncio._wake.wake_now_python, the specification and fallback.
 * ------------------------------------------------------------------------- */

/* The largest read whose whole messages wake their reader directly:
 * tether.asyncio._wake.DIRECT_WAKE_READ (exported to check it). */
#define DIRECT_WAKE_READ (16 * 1024)

static PyObject *callbacks_name, *remove_done_callback_name, *call_exception_handler_name,
    *call_soon_name, *context_kwnames, *current_tasks, *task_type, *message_key,
    *exception_key;

/* Find what the direct wake uses: 0, or -1 with an exception. */
static int
wake_now_init(void)
{
    if (context_kwnames != NULL) {
        return 0;
    }
    /* The names wake() calls a future's methods by, when wake_now comes
     * before any connection's method. */
    if (core_init() < 0) {
        return -1;
    }
    INTERN_ONCE(callbacks_name, "_callbacks");
    INTERN_ONCE(remove_done_callback_name, "remove_done_callback");
    INTERN_ONCE(call_exception_handler_name, "call_exception_handler");
    INTERN_ONCE(call_soon_name, "call_soon");
    INTERN_ONCE(message_key, "message");
    INTERN_ONCE(exception_key, "exception");
    if (task_type == NULL && (task_type = core_attribute("asyncio", "Task")) == NULL) {
        return -1;
    }
    if (current_tasks == NULL) {
        /* asyncio's table of the task each loop runs: a dict that its C
         * tasks keep (CPython 3.11 to 3.13), and asyncio.tasks uses the
         * same. From 3.14 on, C tasks keep the running task elsewhere and
         * asyncio.tasks' dict stays empty: trusted, it would let a wake run
         * a task inside another. Without the C table, no wake is direct. */
        PyObject *tasks = core_attribute("_asyncio", "_current_tasks");
        PyObject *used = tasks == NULL ? NULL : core_attribute("asyncio.tasks", "_current_tasks");
        if (used == NULL) {
            PyErr_Clear();
        }
        if (tasks != NULL && used == tasks && PyDict_CheckExact(tasks)) {
            current_tasks = Py_NewRef(tasks);
        }
        Py_XDECREF(tasks);
        Py_XDECREF(used);
    }
    context_kwnames = Py_BuildValue("(s)", "context");
    return context_kwnames == NULL ? -1 : 0;
}

/* asyncio's C future's _callbacks (a getset) and remove_done_callback (a
 * method descriptor), found on the first wake: called without a lookup by
 * name. NULL: by name. */
static PyGetSetDescrObject *future_callbacks;
static PyObject *future_remove_done_callback;
static int future_methods_found;

static void
wake_now_find_methods(void)
{
    future_methods_found = 1;
    PyObject *callbacks = _PyType_Lookup(wake_future_type, callbacks_name),
             *remove = _PyType_Lookup(wake_future_type, remove_done_callback_name);
    if (callbacks != NULL && Py_IS_TYPE(callbacks, &PyGetSetDescr_Type)
        && ((PyGetSetDescrObject *)callbacks)->d_getset->get != NULL) {
        future_callbacks = (PyGetSetDescrObject *)Py_NewRef(callbacks);
    }
    if (remove != NULL && Py_IS_TYPE(remove, &PyMethodDescr_Type)) {
        future_remove_done_callback = Py_NewRef(remove);
    }
}

/* What asyncio's handle does with a callback's exception: the loop's
 * exception handler gets it. SystemExit and KeyboardInterrupt go on. */
static int
wake_now_report(PyObject *loop, PyObject *callback)
{
    if (PyErr_ExceptionMatches(PyExc_SystemExit)
        || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return -1;
    }
    PyObject *exc = take_exception();
    PyObject *context = PyDict_New(), *done = NULL;
    PyObject *message = PyUnicode_FromFormat("Exception in callback %R", callback);
    if (context != NULL && message != NULL && PyDict_SetItem(context, message_key, message) == 0
        && PyDict_SetItem(context, exception_key, exc) == 0) {
        done = PyObject_CallMethodOneArg(loop, call_exception_handler_name, context);
    }
    Py_XDECREF(message);
    Py_XDECREF(context);
    Py_DECREF(exc);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    return 0;
}

/* Set the result of `reader` (a future) to None, unless it is done, and run
 * its one callback, its waiting task's wake-up, now in the task's context,
 * when no task of `loop` is running (from a protocol callback). Otherwise
 * set_result schedules it as usual. 1 if it ran now, 0 if not, -1 with an
 * exception. */
static int
wake_now_impl(PyObject *reader, PyObject *loop)
{
    if (wake_now_init() < 0) {
        return -1;
    }
    if (wake_future_type == NULL || Py_TYPE(reader) != wake_future_type
        || current_tasks == NULL) {
        return wake(reader) < 0 ? -1 : 0;
    }
    PyObject *args[2] = {reader, Py_None};
    PyObject *done = PyObject_Vectorcall(future_done, args, 1, NULL);
    if (done == NULL) {
        return -1;
    }
    int finished = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (finished != 0) {
        return finished < 0 ? -1 : 0;
    }
    PyObject *running = PyDict_GetItemWithError(current_tasks, loop);
    if (running != NULL || PyErr_Occurred()) {
        return running == NULL || wake(reader) < 0 ? -1 : 0;
    }
    if (!future_methods_found) {
        wake_now_find_methods();
    }
    PyObject *callbacks =
        future_callbacks != NULL
            ? future_callbacks->d_getset->get(reader, future_callbacks->d_getset->closure)
            : PyObject_GetAttr(reader, callbacks_name);
    if (callbacks == NULL) {
        return -1;
    }
    PyObject *callback = NULL, *context = NULL;
    if (PyList_CheckExact(callbacks) && PyList_GET_SIZE(callbacks) == 1) {
        PyObject *item = PyList_GET_ITEM(callbacks, 0);
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2
            && PyCFunction_Check(PyTuple_GET_ITEM(item, 0))
            && PyContext_CheckExact(PyTuple_GET_ITEM(item, 1))) {
            PyObject *owner = PyCFunction_GET_SELF(PyTuple_GET_ITEM(item, 0));
            /* Only a task's wake-up: any other callback is scheduled. */
            int is_task = owner != NULL && PyObject_IsInstance(owner, task_type);
            if (is_task < 0) {
                Py_DECREF(callbacks);
                return -1;
            }
            if (is_task) {
                callback = Py_NewRef(PyTuple_GET_ITEM(item, 0));
                context = Py_NewRef(PyTuple_GET_ITEM(item, 1));
            }
        }
    }
    Py_DECREF(callbacks);
    if (callback == NULL) {
        return wake(reader) < 0 ? -1 : 0;
    }
    int status = -1;
    PyObject *remove_args[2] = {reader, callback};
    PyObject *removed =
        future_remove_done_callback != NULL
            ? PyObject_Vectorcall(future_remove_done_callback, remove_args, 2, NULL)
            : PyObject_CallMethodOneArg(reader, remove_done_callback_name, callback);
    if (removed == NULL) {
        goto done;
    }
    Py_DECREF(removed);
    PyObject *set = PyObject_Vectorcall(future_set_result, args, 2, NULL);
    if (set == NULL) {
        goto done;
    }
    Py_DECREF(set);
    if (PyContext_Enter(context) < 0) {
        /* The task's context is entered already (it runs somewhere up the
         * stack): the wake-up waits for the loop, as set_result's would. */
        PyErr_Clear();
        PyObject *call[4] = {loop, callback, reader, context};
        PyObject *handle = PyObject_VectorcallMethod(call_soon_name, call, 3, context_kwnames);
        if (handle != NULL) {
            Py_DECREF(handle);
            status = 0;
        }
        goto done;
    }
    PyObject *result = PyObject_CallOneArg(callback, reader);
    if (PyContext_Exit(context) < 0) {
        Py_XDECREF(result);
        goto done;
    }
    if (result == NULL) {
        status = wake_now_report(loop, callback) < 0 ? -1 : 1;
    }
    else {
        Py_DECREF(result);
        status = 1;
    }
done:
    Py_DECREF(callback);
    Py_DECREF(context);
    return status;
}

PyDoc_STRVAR(wake_now_doc,
"wake_now(reader, loop) -> bool\n\n"
"Set the result of reader, a future, to None unless it is done, and run its\n"
"waiting task's wake-up now when no task of loop runs: see\n"
"tether.asyncio._wake.wake_now_python. Return whether it ran now.");

static PyObject *
wake_now(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "wake_now takes 2 arguments");
        return NULL;
    }
    int status = wake_now_impl(args[0], args[1]);
    return status < 0 ? NULL : Py_NewRef(status ? Py_True : Py_False);
}

PyDoc_STRVAR(receive_messages_doc,
"receive_messages(engine, data, queue, waiter) -> int\n\n"
"Take the whole messages at the start of data, each in one plain frame (or\n"
"compressed in one frame, as many as the queue has room for), into queue (a\n"
"MessageQueue), and wake waiter (a future, or None) if there were any, when\n"
"the engine takes them on its fast path: see\n"
"tether.messages.receive_messages_python. Return how many bytes were taken,\n"
"or -1 when the engine is not in the state for it (nothing was done).");

static PyObject *
receive_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "receive_messages takes 4 arguments");
        return NULL;
    }
    if (core_init() < 0) {
        return NULL;
    }
    PyObject *engine = args[0], *queue = args[2], *waiter = args[3];
    if (!PyObject_TypeCheck(engine, core_engine_type)
        || !PyObject_TypeCheck(queue, core_queue_type)) {
        PyErr_SetString(PyExc_TypeError, "receive_messages takes an engine and a MessageQueue");
        return NULL;
    }
    PyObject *items = SLOT(queue, queue_items_offset), *ready = SLOT(queue, queue_ready_offset);
    PyObject *bound = SLOT(engine, engine_offsets[E_FAST_MAX_SIZE]),
             *mask = SLOT(engine, engine_offsets[E_EXPECT_MASK]);
    if (!engine_takes_messages(engine) || items == NULL || ready == NULL
        || !PyLong_CheckExact(ready) || bound == NULL || mask == NULL
        || (mask != Py_True && mask != Py_False)) {
        return PyLong_FromLong(-1);
    }
    Py_ssize_t max_size = size_bound(bound);
    if (max_size == -2) {
        /* Not a bound the engine would hold: its own path judges. */
        PyErr_Clear();
        return PyLong_FromLong(-1);
    }
    int expect_mask = mask == Py_True;
    /* A compressing extension: held, as decode_message may run Python code. */
    PyObject *whole = SLOT(engine, engine_offsets[E_WHOLE]);
    Py_ssize_t limit = -1;  /* no bound */
    if (whole == Py_None) {
        whole = NULL;
    }
    else if (whole_names() < 0 || (limit = queue_room(queue)) < 0) {
        return NULL;
    }
    Py_XINCREF(whole);
    Py_INCREF(bound);
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        Py_XDECREF(whole);
        Py_DECREF(bound);
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t pos = 0, end = view.len, count = 0;
    int failed = 0;
    while (end - pos >= 2 && count != limit) {
        const unsigned char *frame = buf + pos;
        unsigned char first = frame[0];
        int compressed = whole != NULL && (first == 0xC1 || first == 0xC2);
        Py_ssize_t size;
        unsigned long long length;
        if ((first != 0x81 && first != 0x82 && !compressed)
            || !whole_frame(frame, end - pos, expect_mask, &size, &length)
            || (max_size >= 0 && length > (compressed ? compressed_limit(max_size)
                                                      : (unsigned long long)max_size))) {
            break;
        }
        const unsigned char *key = expect_mask ? frame + size - 4 : NULL;
        PyObject *data =
            compressed ? whole_message(engine, whole, frame + size, (Py_ssize_t)length, key,
                                       first == 0xC1, bound, max_size)
                       : frame_payload(frame + size, (Py_ssize_t)length, key, first == 0x81);
        if (data == NULL) {
            /* Invalid UTF-8 (no exception): the general path fails with 1007;
             * or a compressed message failed the engine. */
            failed = PyErr_Occurred() != NULL;
            break;
        }
        if (queue_append(queue, data) < 0) {
            Py_DECREF(data);
            failed = 1;
            break;
        }
        Py_DECREF(data);
        pos += size + (Py_ssize_t)length;
        count++;
    }
    PyBuffer_Release(&view);
    Py_XDECREF(whole);
    Py_DECREF(bound);
    if (count > 0) {
        /* What was queued counts, even after a failure. */
        PyObject *type = NULL, *value = NULL, *traceback = NULL;
        if (failed) {
            PyErr_Fetch(&type, &value, &traceback);
        }
        if (queue_count(queue, count) < 0 || wake(waiter) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            return NULL;
        }
        if (failed) {
            PyErr_Restore(type, value, traceback);
        }
    }
    return failed ? NULL : PyLong_FromSsize_t(pos);
}

PyDoc_STRVAR(take_message_doc,
"take_message(queue) -> str | bytes | None\n\n"
"Remove and return the first message of queue (a MessageQueue) when it is a\n"
"whole message, as queue.get() does then; None otherwise, with nothing\n"
"done: see tether.messages.take_message_python.");

static PyObject *
take_message(PyObject *self, PyObject *queue)
{
    if (core_init() < 0) {
        return NULL;
    }
    if (!PyObject_TypeCheck(queue, core_queue_type)) {
        PyErr_SetString(PyExc_TypeError, "take_message takes a MessageQueue");
        return NULL;
    }
    PyObject *items = SLOT(queue, queue_items_offset), *ready = SLOT(queue, queue_ready_offset);
    if (items == NULL || items == Py_None || ready == NULL || !PyLong_CheckExact(ready)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t length = PyObject_Length(items);
    if (length <= 0) {
        if (length < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    /* A whole message waits as its data: bytes or str (see MessageQueue). */
    PyObject *first = PySequence_GetItem(items, 0);
    if (first == NULL) {
        return NULL;
    }
    int whole = PyBytes_CheckExact(first) || PyUnicode_CheckExact(first);
    Py_DECREF(first);
    if (!whole) {
        Py_RETURN_NONE;
    }
    PyObject *data = deque_popleft != NULL && Py_TYPE(items) == (PyTypeObject *)core_deque
                         ? PyObject_Vectorcall(deque_popleft, &items, 1, NULL)
                         : PyObject_CallMethodNoArgs(items, popleft_name);
    if (data == NULL || queue_count(queue, -1) < 0) {
        Py_XDECREF(data);
        return NULL;
    }
    return data;
}

PyDoc_STRVAR(message_frame_doc,
"message_frame(engine, data, text)\n--\n\n"
"The frame of one whole message, sent now by the engine, for the caller to\n"
"write: what send_message(data, text) then data_to_send() give, in the common\n"
"case that tether.protocol.connection.Connection.message_frame describes\n"
"(compressed through the engine's only extension if it takes whole messages);\n"
"None otherwise, with nothing done.");

/* What message_frame needs to make a frame: see frame_parts. */
typedef struct {
    PyObject *whole;    /* the engine's whole-message extension, or None (held) */
    PyObject *encoded;  /* the UTF-8 of a non-ASCII str (owned), or NULL */
    const char *payload;
    Py_ssize_t length;
    unsigned char first;  /* FIN and the opcode */
    int masked;
} FrameParts;

/* The last engine class found to have the engine's own send_message and
 * data_to_send, and its version tag then: CPython gives a class a new tag
 * (never one used before) whenever it or a base class changes, and 0 until
 * it has one, so the same class and tag mean the same methods. */
static PyTypeObject *frame_checked_type;
static unsigned int frame_checked_tag;

/* Whether the engine class `type` has the engine's own send_message and
 * data_to_send (a class that overrides them takes the general path). */
static int
frame_own_methods(PyTypeObject *type)
{
    if (type == frame_checked_type && type->tp_version_tag == frame_checked_tag
        && frame_checked_tag != 0) {
        return 1;
    }
    if (_PyType_Lookup(type, send_message_name) != core_send_message
        || _PyType_Lookup(type, data_to_send_name) != core_data_to_send) {
        return 0;
    }
    /* The lookups gave the class a tag, unless CPython ran out of them. */
    frame_checked_type = type;
    frame_checked_tag = type->tp_version_tag;
    return 1;
}

/* Drop what frame_parts holds in `parts`. */
TETHER_INLINE void
frame_parts_release(FrameParts *parts)
{
    Py_CLEAR(parts->encoded);
    Py_CLEAR(parts->whole);
}

/* Read what message_frame makes of (engine, data, text) into `parts`: 1
 * when it makes a frame (then frame_parts_release(parts) after), 0 when it
 * declines (None), -1 with an exception. */
static int
frame_parts(PyObject *engine, PyObject *data, PyObject *text, FrameParts *parts)
{
    if (core_init() < 0) {
        return -1;
    }
    if (!PyObject_TypeCheck(engine, core_engine_type)) {
        PyErr_SetString(PyExc_TypeError, "message_frame takes an engine");
        return -1;
    }
    int is_bytes = PyBytes_CheckExact(data);
    if (!is_bytes && !PyUnicode_CheckExact(data)) {
        return 0;
    }
#define FIELD(index) SLOT(engine, engine_offsets[index])
    PyObject *extensions = FIELD(E_EXTENSIONS), *output = FIELD(E_OUTPUT),
             *mask = FIELD(E_MASK), *whole = FIELD(E_WHOLE);
    if (FIELD(E_STATE) != core_open || FIELD(E_SEND_TRANSFORMED) != Py_None
        || extensions == NULL || !PyList_CheckExact(extensions) || whole == NULL
        || (PyList_GET_SIZE(extensions) != 0 && whole == Py_None)
        || output == NULL
        || (output != Py_None
            && (!PyList_CheckExact(output) || PyList_GET_SIZE(output) != 0))
        || (mask != Py_True && mask != Py_False)
        || !frame_own_methods(Py_TYPE(engine))) {
        return 0;
    }
#undef FIELD
    /* Held: text's __bool__ is Python code, which may drop the engine's. */
    parts->whole = Py_NewRef(whole);
    parts->encoded = NULL;
    /* The opcode as send_message picks it. */
    int as_text;
    if (is_bytes) {
        as_text = text == Py_None ? 0 : PyObject_IsTrue(text);
        if (as_text < 0) {
            Py_DECREF(whole);
            return -1;
        }
    }
    else {
        as_text = text != Py_False;
    }
    if (is_bytes) {
        parts->payload = PyBytes_AS_STRING(data);
        parts->length = PyBytes_GET_SIZE(data);
    }
    else if (PyUnicode_IS_COMPACT_ASCII(data)) {
        /* ASCII is its own UTF-8. */
        parts->payload = (const char *)PyUnicode_1BYTE_DATA(data);
        parts->length = PyUnicode_GET_LENGTH(data);
    }
    else {
        if ((parts->encoded = PyUnicode_AsUTF8String(data)) == NULL) {
            Py_DECREF(whole);
            return -1;
        }
        parts->payload = PyBytes_AS_STRING(parts->encoded);
        parts->length = PyBytes_GET_SIZE(parts->encoded);
    }
    parts->first = as_text ? 0x81 : 0x82;
    parts->masked = mask == Py_True;
    if (whole == Py_None && !parts->masked && parts->length >= 65536) {
        /* A large unmasked payload goes out after its header, uncopied: the
         * engine's general path does that. */
        frame_parts_release(parts);
        return 0;
    }
    return 1;
}

/* Write the plain frame of `parts` at `out` (frame_size(parts) bytes),
 * masked with `key` if it masks (NULL otherwise). */
TETHER_INLINE void
frame_write(const FrameParts *parts, unsigned char *out, const unsigned char *key)
{
    Py_ssize_t at = write_header(out, parts->first, parts->length, key);
    if (key != NULL) {
        xor_mask((const unsigned char *)parts->payload, out + at, parts->length, key);
    }
    else {
        memcpy(out + at, parts->payload, parts->length);
    }
}

/* The size of the plain frame of `parts`. */
TETHER_INLINE Py_ssize_t
frame_size(const FrameParts *parts)
{
    return header_size(parts->length, parts->masked) + parts->length;
}

/* The frame of `parts` (for `data`) as bytes, or NULL with an exception. */
static PyObject *
frame_bytes(const FrameParts *parts, PyObject *data)
{
    if (parts->whole != Py_None) {
        /* Compressed by the connection's extension (see whole_message_frame). */
        return whole_message_frame(parts->whole, parts->first, data, parts->payload,
                                   parts->length, parts->masked);
    }
    const unsigned char *key = NULL;
    if (parts->masked && (key = next_key()) == NULL) {
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, frame_size(parts));
    if (result == NULL) {
        return NULL;
    }
    frame_write(parts, (unsigned char *)PyBytes_AS_STRING(result), key);
    if (key != NULL) {
        draw_key();
    }
    return result;
}

static PyObject *
message_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "message_frame takes 3 arguments");
        return NULL;
    }
    FrameParts parts;
    int found = frame_parts(args[0], args[1], args[2], &parts);
    if (found <= 0) {
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *result = frame_bytes(&parts, args[1]);
    frame_parts_release(&parts);
    return result;
}

/* ---------------------------------------------------------------------------
 * Sending on an asyncio connection (issue 20): a whole message written at
 * once or gathered, in one call.
 *
 * tether.asyncio.connection.write_message_python is the pure-Python twin and
 * the specification: message_frame above, then what Connection._write_frame
 * and Connection._gather do with the frame. The connection's fields are read
 * and set in their slots, at offsets found once from the class.
 * ------------------------------------------------------------------------- */

/* The asyncio connection's fields, in the order of send_fields. */
enum {
    S_SEND_LOCK, S_TRANSPORT, S_PROTOCOL, S_TICK_PENDING, S_SENT_SINCE_WAIT, S_GATHERED,
    S_GATHER_ROOM, S_GATHER_LIMIT, S_WRITE_LIMIT, S_WRITING_PAUSED, S_LOOP, S_SPARE_TICK, S_COUNT
};
static const char *const send_fields[S_COUNT] = {
    "_send_lock", "transport", "protocol", "_tick_pending", "_sent_since_wait", "_gathered",
    "_gather_room", "_gather_limit", "write_limit", "_writing_paused", "_loop", "_spare_tick",
};
static Py_ssize_t send_offsets[S_COUNT];
/* tether.asyncio.connection._Tick and the offset of its `connection` slot. */
static PyTypeObject *tick_type;
static Py_ssize_t tick_connection_offset;
/* A gathered buffer's first allocation (see gather_new): at least this, and
 * at most the room of its gather and this slack, for the frame that ends
 * the gather past its room. */
#define GATHER_MIN_CAPACITY 256
#define GATHER_SLACK 256
static PyTypeObject *send_connection_type;  /* tether.asyncio.connection.Connection */
static PyObject *is_closing_name, *write_name, *get_write_buffer_size_name, *call_soon_name,
    *tick_name, *write_gathered_name, *write_frame_name;

/* Find the class and its slots: 0, or -1 with an exception. */
static int
send_init(void)
{
    if (send_connection_type != NULL) {
        return 0;
    }
    INTERN_ONCE(is_closing_name, "is_closing");
    INTERN_ONCE(write_name, "write");
    INTERN_ONCE(get_write_buffer_size_name, "get_write_buffer_size");
    INTERN_ONCE(call_soon_name, "call_soon");
    INTERN_ONCE(tick_name, "_tick");
    INTERN_ONCE(write_gathered_name, "_write_gathered");
    INTERN_ONCE(write_frame_name, "_write_frame");
    PyObject *type = core_attribute("tether.asyncio.connection", "Connection");
    if (type == NULL) {
        return -1;
    }
    if (!PyType_Check(type)) {
        Py_DECREF(type);
        PyErr_SetString(PyExc_TypeError, "the asyncio connection must be a class");
        return -1;
    }
    Py_ssize_t offsets[S_COUNT];
    for (int i = 0; i < S_COUNT; i++) {
        if (slot_offset(type, "Connection", send_fields[i], &offsets[i]) < 0) {
            Py_DECREF(type);
            return -1;
        }
    }
    PyObject *tick = core_attribute("tether.asyncio.connection", "_Tick");
    if (tick == NULL || !PyType_Check(tick)
        || slot_offset(tick, "_Tick", "connection", &tick_connection_offset) < 0) {
        if (tick != NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "_Tick must be a class");
        }
        Py_XDECREF(tick);
        Py_DECREF(type);
        return -1;
    }
    tick_type = (PyTypeObject *)tick;
    memcpy(send_offsets, offsets, sizeof offsets);
    send_connection_type = (PyTypeObject *)type;  /* last: the mark of success */
    return 0;
}

/* Set the slot `index` of `connection` to `value` (a new reference, stolen). */
TETHER_INLINE void
send_set(PyObject *connection, int index, PyObject *value)
{
    Py_XSETREF(SLOT(connection, send_offsets[index]), value);
}

/* A Python int as a Py_ssize_t, or -1 with an exception (a negative value is
 * refused: no size or limit here is negative). A value past PY_SSIZE_T_MAX
 * (a write_limit of 2 ** 64, say) is PY_SSIZE_T_MAX: it bounds nothing, as
 * the Python twin's arithmetic on it does. */
static Py_ssize_t
send_size(PyObject *value)
{
    int overflow;
    long long size = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0 || size > PY_SSIZE_T_MAX) {
        return PY_SSIZE_T_MAX;
    }
    if (overflow < 0 || size < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative size");
        return -1;
    }
    return (Py_ssize_t)size;
}

/* The gathered buffer of a gather of at most about `room` bytes, holding
 * `size` bytes at `start` first. It is allocated with room for more frames
 * (four times the first, at least GATHER_MIN_CAPACITY bytes, at most the
 * room and a little), and gather_extend doubles its allocation when a frame
 * does not fit: so the frames joining it are written in place, and the
 * buffer, which the transport may keep, is never more than twice its
 * contents. */
static PyObject *
gather_new(const char *start, Py_ssize_t size, Py_ssize_t room)
{
    Py_ssize_t capacity = size < PY_SSIZE_T_MAX / 4 ? 4 * size : size;
    if (capacity < GATHER_MIN_CAPACITY) {
        capacity = GATHER_MIN_CAPACITY;
    }
    if (room < PY_SSIZE_T_MAX - GATHER_SLACK && capacity > room + GATHER_SLACK) {
        capacity = room + GATHER_SLACK;
    }
    if (capacity < size) {
        capacity = size;
    }
    PyObject *buffer = PyByteArray_FromStringAndSize(NULL, capacity);
    if (buffer == NULL) {
        return NULL;
    }
    PyByteArrayObject *array = (PyByteArrayObject *)buffer;
    memcpy(array->ob_bytes, start, size);
    /* The allocation stays; the bytearray holds the frame alone. */
    Py_SET_SIZE(array, size);
    array->ob_bytes[size] = '\0';
    return buffer;
}

/* Make `size` more bytes at the end of the gathered bytearray `buffer` and
 * return where they start, or NULL with an exception: in its allocation
 * when there is room (as PyByteArray_Resize does then, without its call),
 * otherwise in an allocation doubled by PyByteArray_Resize. */
static unsigned char *
gather_extend(PyObject *buffer, Py_ssize_t size)
{
    PyByteArrayObject *array = (PyByteArrayObject *)buffer;
    Py_ssize_t used = Py_SIZE(array);
    if (size > PY_SSIZE_T_MAX / 2 - used) {
        PyErr_NoMemory();
        return NULL;
    }
    if (array->ob_exports != 0 || array->ob_start != array->ob_bytes) {
        /* Not as gather_new made it: the ordinary way. */
        if (PyByteArray_Resize(buffer, used + size) < 0) {
            return NULL;
        }
        return (unsigned char *)PyByteArray_AS_STRING(buffer) + used;
    }
    if (size >= array->ob_alloc - used) {
        /* Resized past one and an eighth of its allocation, a bytearray is
         * allocated for exactly that size (and its terminating zero). */
        if (PyByteArray_Resize(buffer, 2 * (used + size)) < 0) {
            return NULL;
        }
    }
    Py_SET_SIZE(array, used + size);
    array->ob_bytes[used + size] = '\0';
    return (unsigned char *)array->ob_bytes + used;
}

/* After a frame joined the gathered frames (`gathered`): write them all once
 * they fill the room of the gather. 0, or -1 with an exception. */
static int
gather_check(PyObject *connection, PyObject *gathered)
{
    Py_ssize_t room = send_size(SLOT(connection, send_offsets[S_GATHER_ROOM]));
    if (room < 0) {
        return -1;
    }
    if (PyByteArray_GET_SIZE(gathered) < room) {
        return 0;
    }
    PyObject *done = PyObject_CallMethodNoArgs(connection, write_gathered_name);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* Connection._gather: keep `frame` (stolen) with the frames gathered in this
 * loop iteration, in one buffer, and write them all once they reach the
 * room of the gather. 0, or -1 with an exception. */
static int
send_gather(PyObject *connection, PyObject *transport, PyObject *frame)
{
#define FIELD(index) SLOT(connection, send_offsets[index])
    Py_ssize_t size = PyBytes_GET_SIZE(frame);
    PyObject *gathered = FIELD(S_GATHERED);
    if (gathered == Py_None) {
        /* The room for this gather: the gather limit, less what the
         * transport's buffer holds beyond write_limit - gather limit. */
        Py_ssize_t room = send_size(FIELD(S_GATHER_LIMIT));
        Py_ssize_t write_limit = room < 0 ? -1 : send_size(FIELD(S_WRITE_LIMIT));
        PyObject *buffered = write_limit < 0 ? NULL
            : PyObject_CallMethodNoArgs(transport, get_write_buffer_size_name);
        Py_ssize_t held = buffered == NULL ? -1 : send_size(buffered);
        Py_XDECREF(buffered);
        if (held < 0) {
            Py_DECREF(frame);
            return -1;
        }
        Py_ssize_t over = held - (write_limit - room);
        if (over > 0) {
            room -= over;
        }
        if (size >= room) {
            /* No room for more: the frame leaves alone, uncopied. */
            PyObject *closing = PyObject_CallMethodNoArgs(transport, is_closing_name);
            int is_closing = closing == NULL ? -1 : PyObject_IsTrue(closing);
            Py_XDECREF(closing);
            PyObject *written = is_closing != 0 ? NULL
                : PyObject_CallMethodOneArg(transport, write_name, frame);
            Py_DECREF(frame);
            Py_XDECREF(written);
            return is_closing < 0 || (is_closing == 0 && written == NULL) ? -1 : 0;
        }
        PyObject *total = PyLong_FromSsize_t(room);
        PyObject *buffer = total == NULL ? NULL
            : gather_new(PyBytes_AS_STRING(frame), size, room);
        Py_DECREF(frame);
        if (buffer == NULL) {
            Py_XDECREF(total);
            return -1;
        }
        send_set(connection, S_GATHER_ROOM, total);
        send_set(connection, S_GATHERED, buffer);
        return 0;
    }
    unsigned char *out = gather_extend(gathered, size);
    if (out != NULL) {
        memcpy(out, PyBytes_AS_STRING(frame), size);
    }
    Py_DECREF(frame);
    return out == NULL ? -1 : gather_check(connection, gathered);
#undef FIELD
}

/* The last transport class found to have no instance dictionaries and
 * plain attribute lookup (uvloop's), its version tag then (see
 * frame_own_methods), and its is_closing and write: called without a lookup
 * by name. Any other transport's are looked up by name each time. */
static PyTypeObject *transport_checked_type;
static unsigned int transport_checked_tag;
static PyObject *transport_is_closing, *transport_write;

/* 1 if transport_is_closing and transport_write are `transport`'s methods,
 * 0 if they are to be looked up by name. */
static int
transport_methods(PyObject *transport)
{
    PyTypeObject *type = Py_TYPE(transport);
    if (type == transport_checked_type && type->tp_version_tag == transport_checked_tag
        && transport_checked_tag != 0) {
        return 1;
    }
    if (type->tp_dictoffset != 0 || type->tp_getattro != PyObject_GenericGetAttr) {
        return 0;  /* an instance may have attributes of its own */
    }
    PyObject *is_closing = _PyType_Lookup(type, is_closing_name),
             *write = _PyType_Lookup(type, write_name);
    if (is_closing == NULL || write == NULL
        || !PyType_HasFeature(Py_TYPE(is_closing), Py_TPFLAGS_METHOD_DESCRIPTOR)
        || !PyType_HasFeature(Py_TYPE(write), Py_TPFLAGS_METHOD_DESCRIPTOR)
        || type->tp_version_tag == 0) {
        return 0;
    }
    Py_XSETREF(transport_is_closing, Py_NewRef(is_closing));
    Py_XSETREF(transport_write, Py_NewRef(write));
    transport_checked_type = type;
    transport_checked_tag = type->tp_version_tag;
    return 1;
}

/* transport.is_closing() and transport.write(frame) (frame NULL: the first). */
static PyObject *
transport_call(PyObject *transport, PyObject *frame)
{
    if (!transport_methods(transport)) {
        return frame == NULL ? PyObject_CallMethodNoArgs(transport, is_closing_name)
                             : PyObject_CallMethodOneArg(transport, write_name, frame);
    }
    /* Held for the call, which may change the class. */
    PyObject *method = Py_NewRef(frame == NULL ? transport_is_closing : transport_write);
    PyObject *args[2] = {transport, frame};
    PyObject *result = PyObject_Vectorcall(method, args, frame == NULL ? 1 : 2, NULL);
    Py_DECREF(method);
    return result;
}

/* Connection._tick: the connection's spare _Tick, taken from its slot and
 * given the connection, as the property does; the property itself (which
 * makes one) when there is no spare one. A new reference, or NULL. */
static PyObject *
send_tick(PyObject *connection)
{
    PyObject *spare = SLOT(connection, send_offsets[S_SPARE_TICK]);
    if (spare == NULL || !Py_IS_TYPE(spare, tick_type)) {
        return PyObject_GetAttr(connection, tick_name);
    }
    PyObject *tick = Py_NewRef(spare);
    send_set(connection, S_SPARE_TICK, Py_NewRef(Py_None));
    Py_XSETREF(SLOT(tick, tick_connection_offset), Py_NewRef(connection));
    return tick;
}

PyDoc_STRVAR(write_message_doc,
"write_message(connection, data, text)\n--\n\n"
"Send one whole message on an asyncio connection in the common case: its\n"
"frame, made as message_frame makes it, written at once or gathered as\n"
"Connection._write_frame does. Return whether writing is paused (the sender\n"
"then waits for the buffer to drain), or None with nothing done when the\n"
"common case does not apply: see\n"
"tether.asyncio.connection.write_message_python, the pure-Python twin.");

static PyObject *
write_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_message takes 3 arguments");
        return NULL;
    }
    if (send_init() < 0) {
        return NULL;
    }
    PyObject *connection = args[0];
    if (!PyObject_TypeCheck(connection, send_connection_type)) {
        PyErr_SetString(PyExc_TypeError, "write_message takes an asyncio connection");
        return NULL;
    }
#define FIELD(index) SLOT(connection, send_offsets[index])
    for (int i = 0; i < S_COUNT; i++) {
        if (FIELD(i) == NULL) {
            Py_RETURN_NONE;  /* not initialized: the general path raises */
        }
    }
    PyObject *transport = FIELD(S_TRANSPORT), *gathered = FIELD(S_GATHERED);
    if (FIELD(S_SEND_LOCK) != Py_None
        || (gathered != Py_None && !PyByteArray_CheckExact(gathered))) {
        Py_RETURN_NONE;
    }
    if (FIELD(S_TICK_PENDING) != Py_True) {
        /* Written at once: not on a transport that is closing. (Gathered,
         * a frame is dropped with the others if it is.) */
        if (transport == Py_None) {
            Py_RETURN_NONE;
        }
        PyObject *closing = transport_call(transport, NULL);
        if (closing == NULL) {
            return NULL;
        }
        int is_closing = PyObject_IsTrue(closing);
        Py_DECREF(closing);
        if (is_closing != 0) {
            return is_closing < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    /* The engine held for the call: Python code in it (text's __bool__,
     * an extension's) may set another. */
    PyObject *engine = Py_NewRef(FIELD(S_PROTOCOL));
    FrameParts parts;
    int found = frame_parts(engine, args[1], args[2], &parts);
    if (found <= 0) {
        Py_DECREF(engine);
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (parts.whole == Py_None) {
        /* A plain frame joining a gather: made in the gathered buffer
         * itself. The key first: drawing it may call os.urandom. */
        const unsigned char *key = NULL;
        if (parts.masked && (key = next_key()) == NULL) {
            frame_parts_release(&parts);
            Py_DECREF(engine);
            return NULL;
        }
        gathered = FIELD(S_GATHERED);
        if (FIELD(S_TICK_PENDING) == Py_True && FIELD(S_TRANSPORT) != Py_None
            && PyByteArray_CheckExact(gathered)) {
            unsigned char *out = gather_extend(gathered, frame_size(&parts));
            if (out != NULL) {
                frame_write(&parts, out, key);
                if (key != NULL) {
                    draw_key();
                }
            }
            frame_parts_release(&parts);
            Py_DECREF(engine);
            if (out == NULL || gather_check(connection, gathered) < 0) {
                return NULL;
            }
            PyObject *paused = FIELD(S_WRITING_PAUSED);
            return Py_NewRef(paused != NULL ? paused : Py_None);
        }
    }
    PyObject *frame = frame_bytes(&parts, args[1]);
    frame_parts_release(&parts);
    Py_DECREF(engine);
    if (frame == NULL) {
        return NULL;
    }
    if (!PyBytes_CheckExact(frame)) {
        /* Not bytes: from an extension's encode_message, whose frame the
         * Python twin writes (its size is not bytes' here). */
        PyObject *done = PyObject_CallMethodOneArg(connection, write_frame_name, frame);
        Py_DECREF(frame);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
        PyObject *paused = FIELD(S_WRITING_PAUSED);
        return Py_NewRef(paused != NULL ? paused : Py_None);
    }
    /* The fields may have changed in message_frame's Python calls (a text
     * argument's __bool__, os.urandom): read them again. */
    transport = FIELD(S_TRANSPORT);
    gathered = FIELD(S_GATHERED);
    if (transport == Py_None || (gathered != Py_None && !PyByteArray_CheckExact(gathered))) {
        Py_DECREF(frame);
        PyErr_SetString(PyExc_RuntimeError, "the connection changed while sending");
        return NULL;
    }
    Py_INCREF(transport);
    int failed;
    if (FIELD(S_TICK_PENDING) == Py_True) {
        failed = send_gather(connection, transport, frame);
    }
    else {
        PyObject *written = transport_call(transport, frame);
        Py_DECREF(frame);
        failed = written == NULL;
        Py_XDECREF(written);
        if (!failed && FIELD(S_SENT_SINCE_WAIT) == Py_True) {
            /* A second send before waiting for input: gather the next ones
             * until the next loop iteration. */
            send_set(connection, S_TICK_PENDING, Py_NewRef(Py_True));
            PyObject *tick = send_tick(connection);
            PyObject *handle =
                tick == NULL ? NULL
                             : PyObject_CallMethodOneArg(FIELD(S_LOOP), call_soon_name, tick);
            Py_XDECREF(tick);
            failed = handle == NULL;
            Py_XDECREF(handle);
        }
        else if (!failed) {
            send_set(connection, S_SENT_SINCE_WAIT, Py_NewRef(Py_True));
        }
    }
    Py_DECREF(transport);
    if (failed) {
        return NULL;
    }
    PyObject *paused = FIELD(S_WRITING_PAUSED);
    return Py_NewRef(paused != NULL ? paused : Py_None);
#undef FIELD
}

/* ---------------------------------------------------------------------------
 * The coroutine receive (issue 20): Connection.__anext__ of
 * tether.asyncio.connection in C, the step of `async for message in ws`.
 *
 * The Python method Connection.__anext__ is the specification and the
 * fallback: this does the same, without a coroutine frame per message. It
 * returns an awaitable that takes the first whole message of the queue, or
 * waits for one on a future made by the loop, which the connection's reads
 * wake (Connection._reader), exactly as the Python method awaits it. Every
 * case but the common one goes to the connection's own Python methods:
 * close_exc(), MessageQueue.get() and _maybe_resume_reading().
 * ------------------------------------------------------------------------- */

enum {
    A_READING, A_MESSAGES, A_LOST, A_READER, A_LOOP, A_SENT, A_PAUSED, A_PROTOCOL, A_OPTIONS,
    A_COUNT
};
static const char *const anext_fields[A_COUNT] = {
    "_reading", "_messages", "_lost", "_reader", "_loop", "_sent_since_wait",
    "_reading_paused", "protocol", "_reader_options",
};
static Py_ssize_t anext_offsets[A_COUNT];
static PyTypeObject *anext_connection_type;  /* tether.asyncio.connection.Connection */
static PyObject *concurrency_error, *connection_closed_ok;
static PyObject *create_future_name, *await_name, *close_exc_name, *get_name,
    *maybe_resume_name, *uvloop_module_name;

#define CONN(connection, index) SLOT(connection, anext_offsets[index])

/* Set the slot `index` of `connection` to `value` (a new reference is taken). */
TETHER_INLINE void
anext_set(PyObject *connection, int index, PyObject *value)
{
    PyObject *old = CONN(connection, index);
    CONN(connection, index) = Py_NewRef(value);
    Py_XDECREF(old);
}

typedef struct {
    PyObject_HEAD
    PyObject *connection;
    PyObject *waiting;  /* while waiting: what `await` on the reader future iterates */
    int state;  /* ANEXT_NEW, ANEXT_RECEIVING (the connection's reader) or ANEXT_DONE */
} NextMessage;

enum { ANEXT_NEW, ANEXT_RECEIVING, ANEXT_DONE };

/* What the Python method's finally does: the connection reads no more. */
static void
anext_end(NextMessage *self)
{
    Py_CLEAR(self->waiting);
    if (self->state == ANEXT_RECEIVING && self->connection != NULL) {
        anext_set(self->connection, A_READING, Py_False);
        anext_set(self->connection, A_READER, Py_None);
    }
    self->state = ANEXT_DONE;
}

/* End with the exception being raised, as the Python method's except and
 * finally do: ConnectionClosedOK becomes StopAsyncIteration. */
static PySendResult
anext_fail(NextMessage *self)
{
    anext_end(self);
    if (PyErr_ExceptionMatches(connection_closed_ok)) {
        PyErr_Clear();
        PyErr_SetNone(PyExc_StopAsyncIteration);
    }
    return PYGEN_ERROR;
}

/* Whether the slot holds True: 1, 0, or -1 with an exception. */
TETHER_INLINE int
anext_true(PyObject *value)
{
    if (value == Py_True) {
        return 1;
    }
    if (value == Py_False) {
        return 0;
    }
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a field of the connection is unset");
        return -1;
    }
    return PyObject_IsTrue(value);
}

/* What loop.create_future() returns for asyncio's and uvloop's loops:
 * asyncio.Future(loop=loop), made here with the keyword arguments kept on
 * the connection (_reader_options, made on the first wait) rather than a
 * dictionary made and freed per message. Not asyncio.Future() alone, which
 * asks for the running loop, and in Python 3.11 the process id with it: a
 * system call. Any other loop's own method is called. */
static PyObject *future_type, *base_create_future, *uvloop_create_future, *loop_name,
    *no_arguments;

/* 1 if `method` is uvloop's Loop.create_future (uvloop imported by then),
 * 0 if not, -1 with an exception. */
static int
is_uvloop_create_future(PyObject *method)
{
    if (uvloop_create_future == NULL) {
        PyObject *module = PyImport_GetModule(uvloop_module_name);
        if (module == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        PyObject *loop_type = PyObject_GetAttrString(module, "Loop");
        Py_DECREF(module);
        if (loop_type == NULL) {
            PyErr_Clear();
            return 0;
        }
        PyObject *found =
            PyType_Check(loop_type) ? _PyType_Lookup((PyTypeObject *)loop_type, create_future_name)
                                    : NULL;
        uvloop_create_future = Py_XNewRef(found);
        Py_DECREF(loop_type);
        if (uvloop_create_future == NULL) {
            return 0;
        }
    }
    return method == uvloop_create_future;
}

static PyObject *
new_reader(PyObject *connection)
{
    PyObject *loop = CONN(connection, A_LOOP);
    if (loop == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a field of the connection is unset");
        return NULL;
    }
    PyObject *method = _PyType_Lookup(Py_TYPE(loop), create_future_name);
    int plain = method != NULL && method == base_create_future;
    if (!plain && method != NULL && (plain = is_uvloop_create_future(method)) < 0) {
        return NULL;
    }
    if (!plain) {
        return PyObject_CallMethodNoArgs(loop, create_future_name);
    }
    PyObject *options = CONN(connection, A_OPTIONS);
    if (options == NULL || !PyDict_CheckExact(options) || PyDict_GET_SIZE(options) != 1
        || PyDict_GetItemWithError(options, loop_name) != loop) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        PyObject *fresh = PyDict_New();
        if (fresh == NULL || PyDict_SetItem(fresh, loop_name, loop) < 0) {
            Py_XDECREF(fresh);
            return NULL;
        }
        anext_set(connection, A_OPTIONS, fresh);
        Py_DECREF(fresh);
        options = fresh;
    }
    return PyObject_Call(future_type, no_arguments, options);
}

static PySendResult
anext_send(NextMessage *self, PyObject *arg, PyObject **result)
{
    PyObject *connection = self->connection;
    *result = NULL;
    if (self->state == ANEXT_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited __anext__()");
        return PYGEN_ERROR;
    }
    if (self->state == ANEXT_NEW) {
        int reading = anext_true(CONN(connection, A_READING));
        if (reading != 0) {
            self->state = ANEXT_DONE;
            if (reading > 0) {
                PyErr_SetString(concurrency_error,
                                "another coroutine is already receiving from this connection");
            }
            return PYGEN_ERROR;
        }
        anext_set(connection, A_READING, Py_True);
        self->state = ANEXT_RECEIVING;
    }
    else if (self->waiting != NULL) {
        /* Back from the wait: what `await reader` returns or raises. */
        PyObject *waiting = self->waiting, *value;
        PySendResult status = PyIter_Send(waiting, arg, &value);
        if (status == PYGEN_NEXT) {
            /* Not done yet (a step driven by hand): wait on. */
            *result = value;
            return PYGEN_NEXT;
        }
        self->waiting = NULL;
        Py_DECREF(waiting);
        if (status == PYGEN_ERROR) {
            return anext_fail(self);
        }
        Py_DECREF(value);
    }
    PyObject *messages = CONN(connection, A_MESSAGES);
    if (messages == NULL || !PyObject_TypeCheck(messages, core_queue_type)) {
        PyErr_SetString(PyExc_TypeError, "the connection's queue must be a MessageQueue");
        return anext_fail(self);
    }
    PyObject *ready = SLOT(messages, queue_ready_offset);
    if (ready == NULL || !PyLong_CheckExact(ready)) {
        PyErr_SetString(PyExc_TypeError, "the queue's count must be an int");
        return anext_fail(self);
    }
    if (PyLong_AsSsize_t(ready) <= 0) {
        /* Nothing to read: wait for the next read, unless none will come. */
        int lost = anext_true(CONN(connection, A_LOST));
        if (lost != 0) {
            if (lost > 0) {
                PyObject *engine = CONN(connection, A_PROTOCOL);
                PyObject *closed = engine == NULL
                                       ? NULL
                                       : PyObject_CallMethodNoArgs(engine, close_exc_name);
                if (closed != NULL) {
                    PyErr_SetObject((PyObject *)Py_TYPE(closed), closed);
                    Py_DECREF(closed);
                }
            }
            return anext_fail(self);
        }
        anext_set(connection, A_SENT, Py_False);
        PyObject *reader = new_reader(connection);
        if (reader == NULL) {
            return anext_fail(self);
        }
        anext_set(connection, A_READER, reader);
        /* `await reader`: its iterator yields it to the task (marked as
         * awaited), then gives its result or raises. */
        PyAsyncMethods *methods = Py_TYPE(reader)->tp_as_async;
        PyObject *waiting = methods != NULL && methods->am_await != NULL
                                ? methods->am_await(reader)
                                : PyObject_CallMethodNoArgs(reader, await_name);
        Py_DECREF(reader);
        if (waiting == NULL) {
            return anext_fail(self);
        }
        PyObject *yielded;
        PySendResult status = PyIter_Send(waiting, Py_None, &yielded);
        if (status == PYGEN_NEXT) {
            self->waiting = waiting;
            *result = yielded;
            return PYGEN_NEXT;
        }
        Py_DECREF(waiting);
        if (status == PYGEN_ERROR) {
            return anext_fail(self);
        }
        /* Done already (woken from elsewhere in the meantime): look again. */
        Py_DECREF(yielded);
        return anext_send(self, Py_None, result);
    }
    PyObject *message = take_message(NULL, messages);
    if (message == Py_None) {
        Py_DECREF(message);
        message = PyObject_CallMethodNoArgs(messages, get_name);
    }
    if (message == NULL) {
        return anext_fail(self);
    }
    int paused = anext_true(CONN(connection, A_PAUSED));
    PyObject *engine = CONN(connection, A_PROTOCOL);
    if (paused == 0 && engine != NULL && PyObject_TypeCheck(engine, core_engine_type)) {
        PyObject *budget = SLOT(engine, engine_offsets[E_BUDGET]);
        paused = budget == NULL || budget != Py_None;
    }
    else if (paused == 0) {
        paused = 1;  /* Not the engine's class: let the method judge. */
    }
    if (paused != 0) {
        PyObject *done =
            paused < 0 ? NULL : PyObject_CallMethodNoArgs(connection, maybe_resume_name);
        if (done == NULL) {
            Py_DECREF(message);
            return anext_fail(self);
        }
        Py_DECREF(done);
    }
    anext_end(self);
    *result = message;
    return PYGEN_RETURN;
}

/* What __next__ or send() of a C awaitable returns for what its am_send gave
 * (`status` and `result`, which is consumed): the value it yields, or NULL
 * with StopIteration(result) raised when it returned, or with the error. */
static PyObject *
sent_value(PySendResult status, PyObject *result)
{
    if (status == PYGEN_RETURN) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
        return NULL;
    }
    return status == PYGEN_NEXT ? result : NULL;
}

static PyObject *
anext_iternext(NextMessage *self)
{
    PyObject *result;
    PySendResult status = anext_send(self, Py_None, &result);
    return sent_value(status, result);
}

static PyObject *
anext_send_method(NextMessage *self, PyObject *arg)
{
    return anext_iternext(self);
}

static PyObject *
anext_throw(NextMessage *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    PyObject *kind = args[0];
    if (PyExceptionInstance_Check(kind)) {
        PyErr_SetObject((PyObject *)Py_TYPE(kind), kind);
    }
    else if (PyExceptionClass_Check(kind)) {
        PyErr_SetObject(kind, nargs > 1 ? args[1] : NULL);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    if (self->state == ANEXT_RECEIVING) {
        /* Raised where the Python method awaits its future. */
        anext_fail(self);
    }
    else {
        self->state = ANEXT_DONE;
    }
    return NULL;
}

static PyObject *
anext_close(NextMessage *self, PyObject *unused)
{
    anext_end(self);
    Py_RETURN_NONE;
}

static int
anext_traverse(NextMessage *self, visitproc visit, void *arg)
{
    Py_VISIT(self->connection);
    Py_VISIT(self->waiting);
    return 0;
}

static int
anext_clear(NextMessage *self)
{
    /* Dropped while waiting: as when a suspended coroutine is collected,
     * the connection reads no more. */
    anext_end(self);
    Py_CLEAR(self->connection);
    return 0;
}

static void
anext_dealloc(NextMessage *self)
{
    PyObject_GC_UnTrack(self);
    anext_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
anext_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyAsyncMethods anext_async = {
    .am_await = anext_await,
    .am_send = (sendfunc)anext_send,
};

static PyMethodDef anext_methods[] = {
    {"send", (PyCFunction)anext_send_method, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))anext_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)anext_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NextMessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether._speedups.NextMessage",
    .tp_doc = "The awaitable of Connection.__anext__, in C.",
    .tp_basicsize = sizeof(NextMessage),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)anext_dealloc,
    .tp_traverse = (traverseproc)anext_traverse,
    .tp_clear = (inquiry)anext_clear,
    .tp_as_async = &anext_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)anext_iternext,
    .tp_methods = anext_methods,
};

PyDoc_STRVAR(next_message_doc,
"__anext__($self, /)\n--\n\n"
"The next message of ``async for``: see Connection.__anext__.");

static PyObject *
next_message(PyObject *connection, PyObject *unused)
{
    NextMessage *self = PyObject_GC_New(NextMessage, &NextMessageType);
    if (self == NULL) {
        return NULL;
    }
    self->connection = Py_NewRef(connection);
    self->waiting = NULL;
    self->state = ANEXT_NEW;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyMethodDef next_message_def = {
    "__anext__", next_message, METH_NOARGS, next_message_doc,
};

/* Connection.data_received: the read's whole messages queued by
 * receive_messages, the rest to Connection._receive. */
static PyObject *pause_if_full_name, *receive_name;
/* Connection.send's (below) */
static PyObject *drain_name, *throw_name, *close_name, *message_name, *text_name;
static PyTypeObject SendMessageType, CoroutineMethodType;
static Py_ssize_t queue_full_at_offset;

PyDoc_STRVAR(connection_data_received_doc,
"data_received($self, data, /)\n--\n\n"
"Feed a read to the engine: see Connection.data_received.");

static PyObject *
connection_data_received(PyObject *connection, PyObject *data)
{
    PyObject *args[4] = {CONN(connection, A_PROTOCOL), data, CONN(connection, A_MESSAGES),
                         CONN(connection, A_READER)};
    if (args[0] == NULL || args[2] == NULL || args[3] == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a field of the connection is unset");
        return NULL;
    }
    /* Held for the call: waking the reader may run code. */
    Py_INCREF(args[0]);
    Py_INCREF(args[2]);
    Py_INCREF(args[3]);
    PyObject *result = NULL, *rest = NULL, *reader = args[3];
    Py_ssize_t taken = -1, length = PyObject_Length(data);
    int direct = 0;
    if (length < 0) {
        goto done;
    }
    /* A small read's whole messages wake the reader directly, at the end
     * (see wake_now_impl): receive_messages leaves it. */
    direct = reader != Py_None && length <= DIRECT_WAKE_READ;
    if (direct) {
        args[3] = Py_None;
    }
    PyObject *taken_object = receive_messages(NULL, args, 4);
    args[3] = reader;
    if (taken_object == NULL) {
        goto done;
    }
    taken = PyLong_AsSsize_t(taken_object);
    Py_DECREF(taken_object);
    if (taken == -1 && PyErr_Occurred()) {
        goto done;
    }
    if (taken == length) {
        PyObject *queue = args[2];
        PyObject *ready = SLOT(queue, queue_ready_offset),
                 *full_at = SLOT(queue, queue_full_at_offset);
        int full;
        if (ready == NULL || full_at == NULL) {
            full = -1;
        }
        else if (PyLong_CheckExact(ready) && PyLong_CheckExact(full_at)) {
            /* Both counts fit a Py_ssize_t (full_at is at most sys.maxsize). */
            Py_ssize_t have = PyLong_AsSsize_t(ready), bound = PyLong_AsSsize_t(full_at);
            full = (have == -1 || bound == -1) && PyErr_Occurred() ? -1 : have >= bound;
        }
        else {
            full = PyObject_RichCompareBool(ready, full_at, Py_GE);
        }
        if (full < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_AttributeError, "a field of the queue is unset");
            }
            goto done;
        }
        result = full ? PyObject_CallMethodNoArgs(connection, pause_if_full_name)
                      : Py_NewRef(Py_None);
        if (result != NULL) {
            Py_SETREF(result, Py_NewRef(Py_None));
        }
        goto done;
    }
    if (taken > 0) {
        PyObject *view = PyMemoryView_FromObject(data);
        if (view == NULL) {
            goto done;
        }
        rest = PySequence_GetSlice(view, taken, PY_SSIZE_T_MAX);
        Py_DECREF(view);
        if (rest == NULL) {
            goto done;
        }
    }
    else {
        rest = Py_NewRef(data);
    }
    result = PyObject_CallMethodObjArgs(connection, receive_name, rest,
                                        taken > 0 ? Py_True : Py_False, NULL);
done:
    if (result != NULL && direct && taken > 0 && CONN(connection, A_READER) == reader) {
        PyObject *loop = CONN(connection, A_LOOP);
        anext_set(connection, A_READER, Py_None);
        if (loop == NULL || wake_now_impl(reader, loop) < 0) {
            if (loop == NULL) {
                PyErr_SetString(PyExc_AttributeError, "a field of the connection is unset");
            }
            Py_CLEAR(result);
        }
    }
    Py_XDECREF(rest);
    Py_DECREF(args[0]);
    Py_DECREF(args[2]);
    Py_DECREF(args[3]);
    return result;
}

static PyMethodDef data_received_def = {
    "data_received", connection_data_received, METH_O, connection_data_received_doc,
};

/* Find the connection class's slots and the names both methods use: 0, or
 * -1 with an exception. */
static int
connection_init(PyObject *cls)
{
    if (core_init() < 0) {
        return -1;
    }
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "a connection class is needed");
        return -1;
    }
    Py_ssize_t offsets[A_COUNT], full_at;
    for (int i = 0; i < A_COUNT; i++) {
        if (slot_offset(cls, "Connection", anext_fields[i], &offsets[i]) < 0) {
            return -1;
        }
    }
    if (slot_offset((PyObject *)core_queue_type, "MessageQueue", "full_at", &full_at) < 0) {
        return -1;
    }
    if (anext_connection_type == NULL) {
        INTERN_ONCE(create_future_name, "create_future");
        INTERN_ONCE(await_name, "__await__");
        INTERN_ONCE(uvloop_module_name, "uvloop.loop");
        INTERN_ONCE(close_exc_name, "close_exc");
        INTERN_ONCE(get_name, "get");
        INTERN_ONCE(maybe_resume_name, "_maybe_resume_reading");
        INTERN_ONCE(pause_if_full_name, "_pause_if_full");
        INTERN_ONCE(receive_name, "_receive");
        INTERN_ONCE(loop_name, "loop");
        INTERN_ONCE(drain_name, "_drain");
        INTERN_ONCE(throw_name, "throw");
        INTERN_ONCE(close_name, "close");
        INTERN_ONCE(message_name, "message");
        INTERN_ONCE(text_name, "text");
        if (concurrency_error == NULL
            && (concurrency_error = core_attribute("tether.exceptions", "ConcurrencyError"))
                   == NULL) {
            return -1;
        }
        if (connection_closed_ok == NULL
            && (connection_closed_ok = core_attribute("tether.exceptions", "ConnectionClosedOK"))
                   == NULL) {
            return -1;
        }
        if (future_type == NULL
            && (future_type = core_attribute("asyncio", "Future")) == NULL) {
            return -1;
        }
        if (wake_future_type == NULL && PyType_Check(future_type)) {
            /* The methods of asyncio's C future (its Python one has
             * functions instead: those are called by name). */
            PyObject *done = _PyType_Lookup((PyTypeObject *)future_type, done_name),
                     *set_result = _PyType_Lookup((PyTypeObject *)future_type, set_result_name);
            if (done != NULL && set_result != NULL && Py_IS_TYPE(done, &PyMethodDescr_Type)
                && Py_IS_TYPE(set_result, &PyMethodDescr_Type)) {
                future_done = Py_NewRef(done);
                future_set_result = Py_NewRef(set_result);
                wake_future_type = (PyTypeObject *)Py_NewRef(future_type);
            }
        }
        if (no_arguments == NULL && (no_arguments = PyTuple_New(0)) == NULL) {
            return -1;
        }
        if (base_create_future == NULL) {
            PyObject *base = core_attribute("asyncio", "BaseEventLoop");
            if (base == NULL) {
                return -1;
            }
            base_create_future = PyType_Check(base)
                                     ? Py_XNewRef(_PyType_Lookup((PyTypeObject *)base,
                                                                 create_future_name))
                                     : NULL;
            Py_DECREF(base);
            if (base_create_future == NULL) {
                PyErr_SetString(PyExc_TypeError, "asyncio.BaseEventLoop has no create_future");
                return -1;
            }
        }
        if (PyType_Ready(&NextMessageType) < 0 || PyType_Ready(&SendMessageType) < 0
            || PyType_Ready(&CoroutineMethodType) < 0) {
            return -1;
        }
    }
    else if (anext_connection_type != (PyTypeObject *)cls) {
        PyErr_SetString(PyExc_TypeError, "the accelerator serves one connection class");
        return -1;
    }
    memcpy(anext_offsets, offsets, sizeof offsets);
    queue_full_at_offset = full_at;
    Py_XSETREF(anext_connection_type, (PyTypeObject *)Py_NewRef(cls));
    return 0;
}

/* The method `def` of the connection class `cls`, as a descriptor to set on
 * it, once the connection's offsets are read (run once, at import). */
static PyObject *
connection_method(PyObject *cls, PyMethodDef *def)
{
    if (connection_init(cls) < 0) {
        return NULL;
    }
    return PyDescr_NewMethod((PyTypeObject *)cls, def);
}

PyDoc_STRVAR(anext_method_doc,
"anext_method(cls)\n--\n\n"
"Connection.__anext__ in C, for cls (tether.asyncio.connection.Connection),\n"
"as a method descriptor to set on the class: what the Python method does.");

static PyObject *
anext_method(PyObject *module, PyObject *cls)
{
    return connection_method(cls, &next_message_def);
}

PyDoc_STRVAR(data_received_method_doc,
"data_received_method(cls)\n--\n\n"
"Connection.data_received in C, for cls (tether.asyncio.connection.Connection),\n"
"as a method descriptor to set on the class: what the Python method does.");

static PyObject *
data_received_method(PyObject *module, PyObject *cls)
{
    return connection_method(cls, &data_received_def);
}

/* ---------------------------------------------------------------------------
 * Packed header fields (issue 20, the threading server's idle memory).
 *
 * An open connection keeps its handshake's request and response for its
 * whole life: Headers._pack keeps their fields as their header block, which
 * takes less memory than a list of pairs. The pure-Python twin is
 * _pack_python in tether/protocol/headers.py. */

PyDoc_STRVAR(pack_fields_doc,
"pack_fields(fields)\n--\n\n"
"The header block of fields, a list of (name, value) pairs of str, as\n"
"Headers.serialize builds it: a 'name: value' line for each, ended by CRLF,\n"
"then an empty line. Return None, for the fields to stay as they are, when\n"
"fields is empty or not a list of such pairs, or when a name or value holds\n"
"a line feed or a character past U+00FF.");

static PyObject *
pack_fields(PyObject *self, PyObject *fields)
{
    if (!PyList_CheckExact(fields) || PyList_GET_SIZE(fields) == 0) {
        Py_RETURN_NONE;
    }
    /* Each field adds ": " and CRLF to its name and value; the block ends
     * with CRLF. */
    Py_ssize_t count = PyList_GET_SIZE(fields), total = 4 * count + 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *field = PyList_GET_ITEM(fields, i);
        if (!PyTuple_CheckExact(field) || PyTuple_GET_SIZE(field) != 2) {
            Py_RETURN_NONE;
        }
        for (int k = 0; k < 2; k++) {
            PyObject *text = PyTuple_GET_ITEM(field, k);
            if (!PyUnicode_CheckExact(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
                Py_RETURN_NONE;
            }
            total += PyUnicode_GET_LENGTH(text);
        }
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, total);
    if (block == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(block), *out = start;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *field = PyList_GET_ITEM(fields, i);
        PyObject *name = PyTuple_GET_ITEM(field, 0), *value = PyTuple_GET_ITEM(field, 1);
        Py_ssize_t length = PyUnicode_GET_LENGTH(name);
        memcpy(out, PyUnicode_1BYTE_DATA(name), length);
        out += length;
        *out++ = ':';
        *out++ = ' ';
        length = PyUnicode_GET_LENGTH(value);
        memcpy(out, PyUnicode_1BYTE_DATA(value), length);
        out += length;
        *out++ = '\r';
        *out++ = '\n';
    }
    *out++ = '\r';
    *out++ = '\n';
    /* One line feed per line and none inside a name or value, or the block
     * would not read back as these fields: counted once over the block. */
    Py_ssize_t feeds = 0;
    for (Py_ssize_t i = 0; i < total; i++) {
        feeds += start[i] == '\n';
    }
    if (feeds != count + 1) {
        Py_DECREF(block);
        Py_RETURN_NONE;
    }
    return block;
}

/* ---------------------------------------------------------------------------
 * The coroutine send (issue 20): Connection.send of tether.asyncio.connection
 * in C, the other half of the coroutine echo.
 *
 * The Python method Connection.send (send_python there) is the
 * specification and the fallback. The C method returns an awaitable that
 * does, when first resumed, what the Python coroutine does: write_message
 * takes the common case in one call; if the write buffer is then over
 * write_limit, it awaits Connection._drain(); if write_message declines, it
 * awaits the Python coroutine itself, which takes the general path. So
 * nothing happens until it is awaited, as with a coroutine, and a message
 * sent at once costs no coroutine frame. The method is set on the class as a
 * CoroutineMethod: a method descriptor that names the Python method as
 * __wrapped__, for its name, docstring and signature (inspect, Sphinx).
 * ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *connection, *message, *text;
    PyObject *fallback;  /* the Python method, for the general path */
    PyObject *waiting;   /* while waiting: the coroutine awaited (_drain or the Python send) */
    int state;           /* SEND_NEW, SEND_WAITING or SEND_DONE */
} SendMessage;

enum { SEND_NEW, SEND_WAITING, SEND_DONE };

static PySendResult
send_message_send(SendMessage *self, PyObject *arg, PyObject **result)
{
    *result = NULL;
    if (self->state == SEND_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (self->state == SEND_NEW) {
        self->state = SEND_DONE;
        PyObject *args[3] = {self->connection, self->message, self->text};
        PyObject *paused = write_message(NULL, args, 3);
        if (paused == NULL) {
            return PYGEN_ERROR;
        }
        PyObject *waiting;
        if (paused == Py_False) {
            Py_DECREF(paused);
            *result = Py_NewRef(Py_None);
            return PYGEN_RETURN;
        }
        if (paused == Py_None) {
            /* Declined: the Python coroutine takes the general path. */
            waiting = PyObject_Vectorcall(self->fallback, args, 3, NULL);
        }
        else {
            waiting = PyObject_CallMethodNoArgs(self->connection, drain_name);
        }
        Py_DECREF(paused);
        if (waiting == NULL) {
            return PYGEN_ERROR;
        }
        self->waiting = waiting;
        self->state = SEND_WAITING;
        arg = Py_None;
    }
    PySendResult status = PyIter_Send(self->waiting, arg, result);
    if (status != PYGEN_NEXT) {
        Py_CLEAR(self->waiting);
        self->state = SEND_DONE;
    }
    return status;
}

static PyObject *
send_message_iternext(SendMessage *self)
{
    PyObject *result;
    PySendResult status = send_message_send(self, Py_None, &result);
    if (status == PYGEN_RETURN && result == Py_None) {
        /* Exhausted: __next__ may return NULL with no StopIteration set. */
        Py_DECREF(result);
        return NULL;
    }
    return sent_value(status, result);
}

static PyObject *
send_message_send_method(SendMessage *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = send_message_send(self, arg, &result);
    return sent_value(status, result);
}

static PyObject *
send_message_throw(SendMessage *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    if (self->state == SEND_WAITING) {
        /* Raised where the coroutine waits: in the one it awaits. */
        PyObject *method = PyObject_GetAttr(self->waiting, throw_name);
        PyObject *result = method == NULL ? NULL : PyObject_Vectorcall(method, args, nargs, NULL);
        Py_XDECREF(method);
        if (result == NULL) {
            Py_CLEAR(self->waiting);
            self->state = SEND_DONE;
        }
        return result;
    }
    self->state = SEND_DONE;
    PyObject *kind = args[0];
    if (PyExceptionInstance_Check(kind)) {
        PyErr_SetObject((PyObject *)Py_TYPE(kind), kind);
    }
    else if (PyExceptionClass_Check(kind)) {
        PyErr_SetObject(kind, nargs > 1 ? args[1] : NULL);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *
send_message_close(SendMessage *self, PyObject *unused)
{
    PyObject *waiting = self->waiting;
    self->waiting = NULL;
    self->state = SEND_DONE;
    if (waiting == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *result = PyObject_CallMethodNoArgs(waiting, close_name);
    Py_DECREF(waiting);
    return result;
}

static int
send_message_traverse(SendMessage *self, visitproc visit, void *arg)
{
    Py_VISIT(self->connection);
    Py_VISIT(self->message);
    Py_VISIT(self->text);
    Py_VISIT(self->fallback);
    Py_VISIT(self->waiting);
    return 0;
}

static int
send_message_clear(SendMessage *self)
{
    Py_CLEAR(self->connection);
    Py_CLEAR(self->message);
    Py_CLEAR(self->text);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->waiting);
    return 0;
}

static void
send_message_dealloc(SendMessage *self)
{
    PyObject_GC_UnTrack(self);
    if (self->state == SEND_NEW) {
        /* As a coroutine never awaited warns: the message was not sent. */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (PyErr_WarnEx(PyExc_RuntimeWarning,
                         "coroutine 'Connection.send' was never awaited", 1) < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        PyErr_Restore(type, value, traceback);
    }
    send_message_clear(self);
    PyObject_GC_Del(self);
}

static PyAsyncMethods send_message_async = {
    .am_await = anext_await,
    .am_send = (sendfunc)send_message_send,
};

static PyMethodDef send_message_methods[] = {
    {"send", (PyCFunction)send_message_send_method, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))send_message_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)send_message_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* What a task's repr names the awaitable by, as it names a coroutine. */
static PyObject *
send_message_label(PyObject *self, void *name)
{
    return PyUnicode_FromString((const char *)name);
}

static PyGetSetDef send_message_getset[] = {
    {"__name__", (getter)send_message_label, NULL, NULL, "send"},
    {"__qualname__", (getter)send_message_label, NULL, NULL, "Connection.send"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SendMessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether._speedups.SendMessage",
    .tp_doc = "The awaitable of Connection.send, in C.",
    .tp_basicsize = sizeof(SendMessage),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)send_message_dealloc,
    .tp_traverse = (traverseproc)send_message_traverse,
    .tp_clear = (inquiry)send_message_clear,
    .tp_as_async = &send_message_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)send_message_iternext,
    .tp_methods = send_message_methods,
    .tp_getset = send_message_getset,
};

/* The method descriptor: called as a method with the connection first, it
 * makes a SendMessage. __wrapped__ is the Python method. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *wrapped;
} CoroutineMethod;

static PyObject *
coroutine_method_call(CoroutineMethod *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *values[2] = {NULL, NULL};  /* message, text */
    if (nargs < 1 || !PyObject_TypeCheck(args[0], anext_connection_type)) {
        PyErr_SetString(PyExc_TypeError, "send() needs an asyncio connection first");
        return NULL;
    }
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "send() takes from 2 to 3 positional arguments but %zd were given", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        values[i - 1] = args[i];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int index = PyUnicode_Compare(name, message_name) == 0 ? 0
                    : PyUnicode_Compare(name, text_name) == 0 ? 1
                                                               : -1;
        if (index < 0) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument '%S'",
                             name);
            }
            return NULL;
        }
        if (values[index] != NULL) {
            PyErr_Format(PyExc_TypeError, "send() got multiple values for argument '%S'", name);
            return NULL;
        }
        values[index] = args[nargs + i];
    }
    if (values[0] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "send() missing 1 required positional argument: 'message'");
        return NULL;
    }
    SendMessage *sending = PyObject_GC_New(SendMessage, &SendMessageType);
    if (sending == NULL) {
        return NULL;
    }
    sending->connection = Py_NewRef(args[0]);
    sending->message = Py_NewRef(values[0]);
    sending->text = Py_NewRef(values[1] == NULL ? Py_None : values[1]);
    sending->fallback = Py_NewRef(self->wrapped);
    sending->waiting = NULL;
    sending->state = SEND_NEW;
    PyObject_GC_Track(sending);
    return (PyObject *)sending;
}

static PyObject *
coroutine_method_get(PyObject *self, PyObject *instance, PyObject *owner)
{
    if (instance == NULL || instance == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, instance);
}

static PyObject *
coroutine_method_wrapped_attribute(CoroutineMethod *self, void *name)
{
    return PyObject_GetAttrString(self->wrapped, (const char *)name);
}

static PyObject *
coroutine_method_wrapped(CoroutineMethod *self, void *unused)
{
    return Py_NewRef(self->wrapped);
}

static PyGetSetDef coroutine_method_getset[] = {
    {"__wrapped__", (getter)coroutine_method_wrapped, NULL, NULL, NULL},
    {"__doc__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__doc__"},
    {"__name__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__name__"},
    {"__qualname__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__qualname__"},
    {"__module__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__module__"},
    /* What inspect reads of a function: for iscoroutinefunction, signature
     * and typing.get_type_hints (Sphinx), as of the Python method. */
    {"__annotations__", (getter)coroutine_method_wrapped_attribute, NULL, NULL,
     "__annotations__"},
    {"__code__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__code__"},
    {"__defaults__", (getter)coroutine_method_wrapped_attribute, NULL, NULL, "__defaults__"},
    {"__kwdefaults__", (getter)coroutine_method_wrapped_attribute, NULL, NULL,
     "__kwdefaults__"},
    {NULL, NULL, NULL, NULL, NULL},
};

static int
coroutine_method_traverse(CoroutineMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->wrapped);
    return 0;
}

static void
coroutine_method_dealloc(CoroutineMethod *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->wrapped);
    PyObject_GC_Del(self);
}

static PyTypeObject CoroutineMethodType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tether._speedups.CoroutineMethod",
    .tp_doc = NULL,
    .tp_basicsize = sizeof(CoroutineMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(CoroutineMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dealloc = (destructor)coroutine_method_dealloc,
    .tp_traverse = (traverseproc)coroutine_method_traverse,
    .tp_descr_get = coroutine_method_get,
    .tp_getset = coroutine_method_getset,
};

PyDoc_STRVAR(send_method_doc,
"send_method(cls, send)\n--\n\n"
"Connection.send in C, for cls (tether.asyncio.connection.Connection), as a\n"
"method descriptor to set on the class: what the Python coroutine method send\n"
"does, which it takes the general path with and names as __wrapped__.");

static PyObject *
send_method(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send_method takes 2 arguments");
        return NULL;
    }
    if (connection_init(args[0]) < 0) {
        return NULL;
    }
    if (!PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_method needs the Python method");
        return NULL;
    }
    CoroutineMethod *self = PyObject_GC_New(CoroutineMethod, &CoroutineMethodType);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)coroutine_method_call;
    self->wrapped = Py_NewRef(args[1]);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS, apply_mask_doc},
    {"build_frame", (PyCFunction)(void (*)(void))build_frame, METH_FASTCALL, build_frame_doc},
    {"deflate_frame", (PyCFunction)(void (*)(void))deflate_frame, METH_FASTCALL,
     deflate_frame_doc},
    {"fill_payload", (PyCFunction)(void (*)(void))fill_payload, METH_FASTCALL, fill_payload_doc},
    {"inflate_frame", (PyCFunction)(void (*)(void))inflate_frame, METH_FASTCALL,
     inflate_frame_doc},
    {"encode_whole", (PyCFunction)(void (*)(void))encode_whole, METH_FASTCALL,
     encode_whole_doc},
    {"forget_keys", forget_keys, METH_NOARGS, forget_keys_doc},
    {"register_deflate", register_deflate, METH_O, register_deflate_doc},
    {"make_message", make_message, METH_O, make_message_doc},
    {"masking_key", masking_key, METH_NOARGS, masking_key_doc},
    {"message_frame", (PyCFunction)(void (*)(void))message_frame, METH_FASTCALL,
     message_frame_doc},
    {"new_frame", (PyCFunction)(void (*)(void))new_frame, METH_FASTCALL, new_frame_doc},
    {"new_payload", new_payload, METH_O, new_payload_doc},
    {"parse_header", parse_header, METH_VARARGS, parse_header_doc},
    {"deliver_messages", (PyCFunction)(void (*)(void))deliver_messages, METH_FASTCALL,
     deliver_messages_doc},
    {"read_messages", (PyCFunction)(void (*)(void))read_messages, METH_FASTCALL,
     read_messages_doc},
    {"receive_messages", (PyCFunction)(void (*)(void))receive_messages, METH_FASTCALL,
     receive_messages_doc},
    {"take_message", take_message, METH_O, take_message_doc},
    {"wake_now", (PyCFunction)(void (*)(void))wake_now, METH_FASTCALL, wake_now_doc},
    {"write_message", (PyCFunction)(void (*)(void))write_message, METH_FASTCALL,
     write_message_doc},
    {"anext_method", anext_method, METH_O, anext_method_doc},
    {"data_received_method", data_received_method, METH_O, data_received_method_doc},
    {"send_method", (PyCFunction)(void (*)(void))send_method, METH_FASTCALL, send_method_doc},
#ifndef _WIN32
    {"write_shared", (PyCFunction)(void (*)(void))write_shared, METH_FASTCALL, write_shared_doc},
#endif
    {"read_request_head", (PyCFunction)(void (*)(void))read_request_head, METH_FASTCALL,
     read_request_head_doc},
    {"read_response_head", (PyCFunction)(void (*)(void))read_response_head, METH_FASTCALL,
     read_response_head_doc},
    {"pack_fields", pack_fields, METH_O, pack_fields_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    PyObject *exceptions;

    /* The C statics hold objects of the interpreter that set them, and one
     * set serves one tether: a subinterpreter (which has its own tether
     * modules and classes) would overwrite them and leave them dangling when
     * it ends. Subinterpreters run tether in pure Python instead. */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "tether._speedups is for the main interpreter only");
        return -1;
    }
#ifdef TETHER_AVX2
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    init_head_classes();
    exceptions = PyImport_ImportModule("tether.exceptions");
    if (exceptions == NULL) {
        return -1;
    }
    protocol_error = PyObject_GetAttrString(exceptions, "ProtocolError");
    payload_too_big = PyObject_GetAttrString(exceptions, "PayloadTooBig");
    Py_DECREF(exceptions);
    if (protocol_error == NULL || payload_too_big == NULL) {
        return -1;
    }
    decode_message_name = PyUnicode_InternFromString("decode_message");
    if (decode_message_name == NULL) {
        return -1;
    }
    compress_name = PyUnicode_InternFromString("compress");
    flush_name = PyUnicode_InternFromString("flush");
    decompress_name = PyUnicode_InternFromString("decompress");
    PyObject *zlib = PyImport_ImportModule("zlib");
    if (zlib == NULL) {
        return -1;
    }
    sync_flush = PyObject_GetAttrString(zlib, "Z_SYNC_FLUSH");
    zlib_error_type = PyObject_GetAttrString(zlib, "error");
    decoder_attr = PyUnicode_InternFromString("_decoder");
    encoder_attr = PyUnicode_InternFromString("_encoder");
    remote_no_context_attr = PyUnicode_InternFromString("remote_no_context_takeover");
    local_no_context_attr = PyUnicode_InternFromString("local_no_context_takeover");
    restart_name = PyUnicode_InternFromString("_restart");
    encode_message_name = PyUnicode_InternFromString("encode_message");
    new_decoder_name = PyUnicode_InternFromString("_new_decoder");
    new_encoder_name = PyUnicode_InternFromString("_new_encoder");
    if (decoder_attr == NULL || encoder_attr == NULL || remote_no_context_attr == NULL
        || local_no_context_attr == NULL || restart_name == NULL || encode_message_name == NULL
        || new_decoder_name == NULL || new_encoder_name == NULL) {
        Py_DECREF(zlib);
        return -1;
    }
    Py_DECREF(zlib);
    if (PyModule_AddIntConstant(module, "DIRECT_WAKE_READ", DIRECT_WAKE_READ) < 0) {
        return -1;
    }
    if (zlib_error_type == NULL || PyModule_AddType(module, &DeflaterType) < 0
        || PyModule_AddType(module, &InflaterType) < 0) {
        return -1;
    }
    if (compress_name == NULL || flush_name == NULL || decompress_name == NULL
        || sync_flush == NULL) {
        return -1;
    }
    os_module = PyImport_ImportModule("os");
    if (os_module == NULL) {
        return -1;
    }
    return find_message_type();
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12 lets a module declare it (the default is "supported"); the
     * check in speedups_exec covers 3.11. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "tether._speedups",
    "C versions of tether's hot paths: masking, frame headers, one-frame messages, frame\n"
    "building and the framing around zlib for permessage-deflate.",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
