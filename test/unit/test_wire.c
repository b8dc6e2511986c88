/* Wire protocol encoding and validation: pure logic. */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "zcrdma.h"
#include "wire.h"

static size_t make(uint8_t *buf, uint8_t type, uint32_t len, uint32_t id, uint32_t ack)
{
	struct zc__hdr h = {.version = ZC_WIRE_VERSION, .type = type, .len = len, .id = id, .ack = ack};

	zc__hdr_encode(buf, &h);
	return ZC_HDR_SIZE;
}

START_TEST(test_eager_header_rides_in_the_immediate)
{
	struct zc__hdr h;
	uint32_t imm = zc__imm_encode(7, 4096);
	uint8_t raw[4];

	/* big-endian on the wire: kind 1 in the top bits, delta, window */
	memcpy(raw, &imm, 4);
	ck_assert_uint_eq(raw[0], 0x20);
	ck_assert_uint_eq(raw[1], 0x07);
	ck_assert_uint_eq(raw[2], 0x10);
	ck_assert_uint_eq(raw[3], 0x00);
	ck_assert_int_eq(zc__imm_decode(imm, 4096, 4096, 0xfffffffe, &h), 0);
	ck_assert_uint_eq(h.type, ZC_MSG_EAGER);
	ck_assert_uint_eq(h.len, 4096);
	ck_assert_uint_eq(h.window, 4096);
	ck_assert_uint_eq(h.ack, 5); /* the previous ack plus 7, wrapping */
	ck_assert_int_eq(zc__imm_decode(zc__imm_encode(ZC_IMM_ACK_DELTA_MAX, 0), 0, 16, 0, &h), 0);
	ck_assert_uint_eq(h.ack, ZC_IMM_ACK_DELTA_MAX);
	ck_assert_uint_eq(h.len, 0);
}
END_TEST

START_TEST(test_bad_immediates_are_protocol_errors)
{
	struct zc__hdr h;
	uint32_t imm;

	/* payload beyond the slot */
	ck_assert_int_eq(zc__imm_decode(zc__imm_encode(0, 1), 101, 100, 0, &h), -ZC_EPEERPROTO);
	/* window beyond the largest */
	ck_assert_int_eq(zc__imm_decode(zc__imm_encode(0, 4097), 10, 100, 0, &h), -ZC_EPEERPROTO);
	/* reserved kinds (0, 2..7) */
	imm = htobe32(0x00000001);
	ck_assert_int_eq(zc__imm_decode(imm, 10, 100, 0, &h), -ZC_EPEERPROTO);
	imm = htobe32(0xe0000001);
	ck_assert_int_eq(zc__imm_decode(imm, 10, 100, 0, &h), -ZC_EPEERPROTO);
}
END_TEST

START_TEST(test_header_is_little_endian_on_the_wire)
{
	uint8_t buf[16];

	make(buf, ZC_MSG_CREDIT, 0, 0, 0x01020304);
	ck_assert_uint_eq(buf[4], 0x04);
	ck_assert_uint_eq(buf[7], 0x01);
}
END_TEST

START_TEST(test_rts_roundtrip_and_range_checks)
{
	uint8_t buf[ZC_RTS_SIZE];
	struct zc__rts in = {.addr = 0x7f0000001001, .len = 64ull << 20, .rkey = 0x1234, .flags = ZC_RTS_F_INV}, out;
	struct zc__hdr h;

	make(buf, ZC_MSG_RTS, 0, 7, 1);
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), 0);
	ck_assert_uint_eq(out.addr, in.addr);
	ck_assert_uint_eq(out.len, in.len);
	ck_assert_uint_eq(out.rkey, in.rkey);
	ck_assert_uint_eq(out.flags, ZC_RTS_F_INV);
	ck_assert_uint_eq(h.id, 7);

	in.len = 0;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	in.len = ZC_RNDV_MAX_LEN + 1;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	in.len = 4096;
	in.addr = UINT64_MAX - 100;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	in.addr = 4096;
	in.flags = 0x80;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	/* A valid RTS one byte short: only its length is wrong. */
	in.flags = ZC_RTS_F_INV;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE - 1, &h, &out), -ZC_EPEERPROTO);
}
END_TEST

START_TEST(test_adv_and_put_are_data_and_checked)
{
	uint8_t buf[ZC_RTS_SIZE];
	struct zc__rts in = {.addr = 0x7f0000002003, .len = 65536, .rkey = 0xabcd}, out;
	struct zc__hdr h;

	ck_assert(zc__msg_is_data(ZC_MSG_ADV));
	ck_assert(zc__msg_is_data(ZC_MSG_PUT));
	ck_assert(!zc__msg_is_data(ZC_MSG_FIN));
	/* ADV: an RTS's body, the id names the peer's data message */
	make(buf, ZC_MSG_ADV, 0, 41, 2);
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), 0);
	ck_assert_uint_eq(h.type, ZC_MSG_ADV);
	ck_assert_uint_eq(h.id, 41);
	ck_assert_uint_eq(out.addr, in.addr);
	ck_assert_uint_eq(out.len, in.len);
	ck_assert_uint_eq(out.rkey, in.rkey);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &out), -ZC_EPEERPROTO);
	/* the PUT invalidates an ADV's window: no flag is defined */
	in.flags = ZC_RTS_F_INV;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	in.flags = 0;
	in.addr = UINT64_MAX - 10;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	in.addr = 4096;
	in.len = 0;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_ADV, 5, 41, 2); /* a length in the header */
	in.len = 1;
	zc__rts_encode(buf + ZC_HDR_SIZE, &in);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_RTS_SIZE, &h, &out), -ZC_EPEERPROTO);
	/* up to ZC_ADV_MAX buffers in one ADV, each checked */
	{
		uint8_t many[ZC_ADV_SIZE(ZC_ADV_MAX + 1)];
		struct zc__rts d;
		uint32_t i;

		make(many, ZC_MSG_ADV, 0, 7, 2);
		for (i = 0; i <= ZC_ADV_MAX; i++)
			zc__rts_encode(many + ZC_ADV_SIZE(i),
				       &(struct zc__rts){.addr = 4096 * (i + 1), .len = 100 + i, .rkey = 50 + i});
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(3), &h, &out), 0);
		ck_assert_uint_eq(zc__adv_count(ZC_ADV_SIZE(3)), 3);
		zc__adv_desc(many, 2, &d);
		ck_assert_uint_eq(d.addr, 3 * 4096);
		ck_assert_uint_eq(d.len, 102);
		ck_assert_uint_eq(d.rkey, 52);
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(ZC_ADV_MAX), &h, &out), 0);
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(ZC_ADV_MAX + 1), &h, &out), -ZC_EPEERPROTO);
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(2) + 1, &h, &out), -ZC_EPEERPROTO);
		/* a bad buffer anywhere refuses the whole message */
		zc__rts_encode(many + ZC_ADV_SIZE(2), &(struct zc__rts){.addr = UINT64_MAX, .len = 2, .rkey = 1});
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(3), &h, &out), -ZC_EPEERPROTO);
		ck_assert_int_eq(zc__msg_decode(many, ZC_ADV_SIZE(2), &h, &out), 0);
	}
	/* PUT: a header with the bytes written, nothing after it */
	make(buf, ZC_MSG_PUT, 65536, 41, 3);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &out), 0);
	ck_assert_uint_eq(h.type, ZC_MSG_PUT);
	ck_assert_uint_eq(h.len, 65536);
	ck_assert_uint_eq(h.id, 41);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE + 1, &h, &out), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_PUT, 0, 41, 3);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &out), -ZC_EPEERPROTO);
}
END_TEST

START_TEST(test_malformed_headers_are_rejected)
{
	uint8_t buf[64] = {0};
	struct zc__hdr h;
	struct zc__rts r;

	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE - 1, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_CREDIT, 0, 0, 0);
	buf[0] = 9;
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EVERSION);
	make(buf, 0, 0, 0, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	make(buf, 77, 0, 0, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_CREDIT, 0, 0, 0);
	buf[2] = 0x01; /* window 4097 */
	buf[3] = 0x10;
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	buf[3] = 0x0f; /* 3841 is fine */
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), 0);
	ck_assert_uint_eq(h.window, 0x0f01);
	/* an EAGER travels only with immediate data, never with a header */
	make(buf, ZC_MSG_EAGER, 10, 0, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE + 10, &h, &r), -ZC_EPEERPROTO);
	/* control messages carry nothing */
	make(buf, ZC_MSG_CREDIT, 4, 0, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE + 4, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_CLOSE, 0, 3, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	/* SHUTDOWN (half-close) is a control message like CLOSE */
	make(buf, ZC_MSG_SHUTDOWN, 0, 0, 7);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), 0);
	ck_assert_uint_eq(h.type, ZC_MSG_SHUTDOWN);
	ck_assert_uint_eq(h.ack, 7);
	make(buf, ZC_MSG_SHUTDOWN, 0, 3, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_SHUTDOWN, 1, 0, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE + 1, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_SHUTDOWN + 1, 0, 0, 0); /* the first unknown type */
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), -ZC_EPEERPROTO);
	make(buf, ZC_MSG_FIN, 0, 3, 0);
	ck_assert_int_eq(zc__msg_decode(buf, ZC_HDR_SIZE, &h, &r), 0);
}
END_TEST

START_TEST(test_random_bytes_never_crash_the_decoder)
{
	uint8_t buf[ZC_RTS_SIZE];
	struct zc__hdr h;
	struct zc__rts r;
	uint32_t x = 12345;
	int i, j, ok = 0;

	for (i = 0; i < 100000; i++) {
		for (j = 0; j < (int)sizeof(buf); j++) {
			x = x * 1103515245 + 12345;
			buf[j] = (uint8_t)(x >> 16);
		}
		buf[0] = ZC_WIRE_VERSION;
		if (zc__msg_decode(buf, (size_t)(x % (sizeof(buf) + 1)), &h, &r) == 0)
			ok++;
	}
	ck_assert_int_lt(ok, 100000);
}
END_TEST

START_TEST(test_priv_roundtrip_and_validation)
{
	struct zc__priv p = {.version = ZC_WIRE_VERSION, .credits = 64, .slot_size = 16400, .rd_atom = 128}, q;
	uint8_t buf[ZC_PRIV_SIZE + 8] = {0};

	zc__priv_encode(buf, &p);
	ck_assert_int_eq(zc__priv_decode(buf, sizeof(buf), &q), 0);
	ck_assert_uint_eq(q.credits, 64);
	ck_assert_uint_eq(q.slot_size, 16400);
	ck_assert_uint_eq(q.rd_atom, 128);
	ck_assert_int_eq(zc__priv_decode(buf, ZC_PRIV_SIZE - 1, &q), -ZC_EPEERPROTO);
	ck_assert_int_eq(zc__priv_decode(NULL, 0, &q), -ZC_EPEERPROTO);
	p.credits = 0;
	zc__priv_encode(buf, &p);
	ck_assert_int_eq(zc__priv_decode(buf, sizeof(buf), &q), -ZC_EPEERPROTO);
	p.credits = 8;
	p.slot_size = ZC_SLOT_MAX + 1;
	zc__priv_encode(buf, &p);
	ck_assert_int_eq(zc__priv_decode(buf, sizeof(buf), &q), -ZC_EPEERPROTO);
	p.slot_size = 128;
	p.version = ZC_WIRE_VERSION - 1;
	zc__priv_encode(buf, &p);
	ck_assert_int_eq(zc__priv_decode(buf, sizeof(buf), &q), -ZC_EVERSION);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(zc__priv_decode(buf, sizeof(buf), &q), -ZC_EPEERPROTO);
}
END_TEST

START_TEST(test_reject_reasons_roundtrip_and_strangers_are_none)
{
	uint8_t buf[32] = {0};

	zc__rej_encode(buf, ZC_REJ_BUSY);
	ck_assert_uint_eq(zc__rej_decode(buf, ZC_REJ_SIZE), ZC_REJ_BUSY);
	ck_assert_uint_eq(zc__rej_decode(buf, sizeof(buf)), ZC_REJ_BUSY); /* padded by rdma_cm */
	ck_assert_uint_eq(zc__rej_decode(buf, ZC_REJ_SIZE - 1), 0);
	zc__rej_encode(buf, ZC_REJ_INCOMPATIBLE);
	ck_assert_uint_eq(zc__rej_decode(buf, ZC_REJ_SIZE), ZC_REJ_INCOMPATIBLE);
	buf[4] = 9;
	ck_assert_uint_eq(zc__rej_decode(buf, ZC_REJ_SIZE), 0);
	memset(buf, 0, sizeof(buf)); /* a kernel's reject carries zeros or nothing */
	ck_assert_uint_eq(zc__rej_decode(buf, sizeof(buf)), 0);
	ck_assert_uint_eq(zc__rej_decode(NULL, 0), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wire");
	TCase *w = tcase_create("wire");
	SRunner *sr;
	int failed;

	tcase_add_test(w, test_eager_header_rides_in_the_immediate);
	tcase_add_test(w, test_bad_immediates_are_protocol_errors);
	tcase_add_test(w, test_header_is_little_endian_on_the_wire);
	tcase_add_test(w, test_rts_roundtrip_and_range_checks);
	tcase_add_test(w, test_adv_and_put_are_data_and_checked);
	tcase_add_test(w, test_malformed_headers_are_rejected);
	tcase_add_test(w, test_random_bytes_never_crash_the_decoder);
	tcase_add_test(w, test_priv_roundtrip_and_validation);
	tcase_add_test(w, test_reject_reasons_roundtrip_and_strangers_are_none);
	suite_add_tcase(s, w);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
