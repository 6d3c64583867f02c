/*
 * test_khash.c — khash: SipHash-2-4-64 and SipHash-2-4-128 against the
 * reference test vectors (key 00 01 .. 0f, message 00 01 .. len-1 for every
 * length 0..63), unaligned input, key sensitivity and khash_new_key().
 * Runs in the criterion runner (single thread per test).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "khash.h"

#define KH_MSG_MAX 64u

/* One reference vector per message length; outputs as the reference lists
 * them, as bytes in hex (khash64: the 8 bytes of the little-endian result;
 * khash128: lo then hi, each little endian).  Arrays, not pointers: criterion
 * hands each parameter to a separate worker process. */
struct kh_vec {
	char name[8];
	unsigned len;
	char sip64[17];
	char sip128[33];
};

static struct kh_vec kh_vectors[] = {
	{ "len00", 0,
	  "310e0edd47db6f72",
	  "a3817f04ba25a8e66df67214c7550293" },
	{ "len01", 1,
	  "fd67dc93c539f874",
	  "da87c1d86b99af44347659119b22fc45" },
	{ "len02", 2,
	  "5a4fa9d909806c0d",
	  "8177228da4a45dc7fca38bdef60affe4" },
	{ "len03", 3,
	  "2d7efbd796666785",
	  "9c70b60c5267a94e5f33b6b02985ed51" },
	{ "len04", 4,
	  "b7877127e09427cf",
	  "f88164c12d9c8faf7d0f6e7c7bcd5579" },
	{ "len05", 5,
	  "8da699cd64557618",
	  "1368875980776f8854527a07690e9627" },
	{ "len06", 6,
	  "cee3fe586e46c9cb",
	  "14eeca338b208613485ea0308fd7a15e" },
	{ "len07", 7,
	  "37d1018bf50002ab",
	  "a1f1ebbed8dbc153c0b84aa61ff08239" },
	{ "len08", 8,
	  "6224939a79f5f593",
	  "3b62a9ba6258f5610f83e264f31497b4" },
	{ "len09", 9,
	  "b0e4a90bdf82009e",
	  "264499060ad9baabc47f8b02bb6d71ed" },
	{ "len10", 10,
	  "f3b9dd94c5bb5d7a",
	  "00110dc378146956c95447d3f3d0fbba" },
	{ "len11", 11,
	  "a7ad6b22462fb3f4",
	  "0151c568386b6677a2b4dc6f81e5dc18" },
	{ "len12", 12,
	  "fbe50e86bc8f1e75",
	  "d626b266905ef35882634df68532c125" },
	{ "len13", 13,
	  "903d84c02756ea14",
	  "9869e247e9c08b10d029934fc4b952f7" },
	{ "len14", 14,
	  "eef27a8e90ca23f7",
	  "31fcefac66d7de9c7ec7485fe4494902" },
	{ "len15", 15,
	  "e545be4961ca29a1",
	  "5493e99933b0a8117e08ec0f97cfc3d9" },
	{ "len16", 16,
	  "db9bc2577fcc2a3f",
	  "6ee2a4ca67b054bbfd3315bf85230577" },
	{ "len17", 17,
	  "9447be2cf5e99a69",
	  "473d06e8738db89854c066c47ae47740" },
	{ "len18", 18,
	  "9cd38d96f0b3c14b",
	  "a426e5e423bf4885294da481feaef723" },
	{ "len19", 19,
	  "bd6179a71dc96dbb",
	  "78017731cf65fab074d5208952512eb1" },
	{ "len20", 20,
	  "98eea21af25cd6be",
	  "9e25fc833f2290733e9344a5e83839eb" },
	{ "len21", 21,
	  "c7673b2eb0cbf2d0",
	  "568e495abe525a218a2214cd3e071d12" },
	{ "len22", 22,
	  "883ea3e395675393",
	  "4a29b54552d16b9a469c10528eff0aae" },
	{ "len23", 23,
	  "c8ce5ccd8c030ca8",
	  "c9d184ddd5a9f5e0cf8ce29a9abf691c" },
	{ "len24", 24,
	  "94af49f6c650adb8",
	  "2db479ae78bd50d8882a8a178a6132ad" },
	{ "len25", 25,
	  "eab8858ade92e1bc",
	  "8ece5f042d5e447b5051b9eacb8d8f6f" },
	{ "len26", 26,
	  "f315bb5bb835d817",
	  "9c0b53b4b3c307e87eaee08678141f66" },
	{ "len27", 27,
	  "adcf6b0763612e2f",
	  "abf248af69a6eae4bfd3eb2f129eeb94" },
	{ "len28", 28,
	  "a5c91da7acaa4dde",
	  "0664da1668574b88b935f3027358aef4" },
	{ "len29", 29,
	  "716595876650a2a6",
	  "aa4b9dc4bf337de90cd4fd3c467c6ab7" },
	{ "len30", 30,
	  "28ef495c53a387ad",
	  "ea5c7f471faf6bde2b1ad7d4686d2287" },
	{ "len31", 31,
	  "42c341d8fa92d832",
	  "2939b0183223fafc1723de4f52c43d35" },
	{ "len32", 32,
	  "ce7cf2722f512771",
	  "7c3956ca5eeafc3e363e9d556546eb68" },
	{ "len33", 33,
	  "e37859f94623f3a7",
	  "77c6077146f01c32b6b69d5f4ea9ffcf" },
	{ "len34", 34,
	  "381205bb1ab0e012",
	  "37a6986cb8847edf0925f0f1309b54de" },
	{ "len35", 35,
	  "ae97a10fd434e015",
	  "a705f0e69da9a8f907241a2e923c8cc8" },
	{ "len36", 36,
	  "b4a31508beff4d31",
	  "3dc47d1f29c448461e9e76ed904f6711" },
	{ "len37", 37,
	  "81396229f0907902",
	  "0d62bf01e6fc0e1a0d3c4751c5d3692b" },
	{ "len38", 38,
	  "4d0cf49ee5d4dcca",
	  "8c03468bca7c669ee4fd5e084bbee7b5" },
	{ "len39", 39,
	  "5c73336a76d8bf9a",
	  "528a5bb93baf2c9c4473cce5d0d22bd9" },
	{ "len40", 40,
	  "d0a704536ba93e0e",
	  "df6a301e95c95dad97ae0cc8c6913bd8" },
	{ "len41", 41,
	  "925958fcd6420cad",
	  "801189902c857f39e73591285e70b6db" },
	{ "len42", 42,
	  "a915c29bc8067318",
	  "e617346ac9c231bb3650ae34ccca0c5b" },
	{ "len43", 43,
	  "952b79f3bc0aa6d4",
	  "27d93437efb721aa401821dcec5adf89" },
	{ "len44", 44,
	  "f21df2e41d4535f9",
	  "89237d9ded9c5e78d8b1c9b166cc7342" },
	{ "len45", 45,
	  "87577519048f53a9",
	  "4a6d8091bf5e7d651189fa94a250b14c" },
	{ "len46", 46,
	  "10a56cf5dfcd9adb",
	  "0e33f96055e7ae893ffc0e3dcf492902" },
	{ "len47", 47,
	  "eb75095ccd986cd0",
	  "e61c432b720b19d18ec8d84bdc63151b" },
	{ "len48", 48,
	  "51a9cb9ecba312e6",
	  "f7e5aef549f782cf379055a608269b16" },
	{ "len49", 49,
	  "96afadfc2ce666c7",
	  "438d030fd0b7a54fa837f2ad201a6403" },
	{ "len50", 50,
	  "72fe52975a4364ee",
	  "a590d3ee4fbf04e3247e0d27f286423f" },
	{ "len51", 51,
	  "5a1645b276d592a1",
	  "5fe2c1a172fe93c4b15cd37caef9f538" },
	{ "len52", 52,
	  "b274cb8ebf87870a",
	  "2c97325cbd06b36eb2133dd08b3a017c" },
	{ "len53", 53,
	  "6f9bb4203de7b381",
	  "92c814227a6bca949ff0659f002ad39e" },
	{ "len54", 54,
	  "eaecb2a30b22a87f",
	  "dce850110bd8328cfbd50841d6911d87" },
	{ "len55", 55,
	  "9924a43cc1315724",
	  "67f14984c7da791248e32bb5922583da" },
	{ "len56", 56,
	  "bd838d3aafbf8db7",
	  "1938f2cf72d54ee97e94166fa91d2a36" },
	{ "len57", 57,
	  "0b1a2a3265d51aea",
	  "74481e9646ed49fe0f6224301604698e" },
	{ "len58", 58,
	  "135079a3231ce660",
	  "57fca5de98a9d6d8006438d0583d8a1d" },
	{ "len59", 59,
	  "932b2846e4d70666",
	  "9fecde1cefdc1cbed4763674d9575359" },
	{ "len60", 60,
	  "e1915f5cb1eca46c",
	  "e3040c00eb28f15366ca73cbd872e740" },
	{ "len61", 61,
	  "f325965ca16d629f",
	  "7697009a6a831dfecca91c5993670f7a" },
	{ "len62", 62,
	  "575ff28e60381be5",
	  "5853542321f567a005d547a4f04759bd" },
	{ "len63", 63,
	  "724506eb4c328a95",
	  "5150d1772f50834a503e069a973fbd7c" },
};

#define KH_NVEC (sizeof(kh_vectors) / sizeof(kh_vectors[0]))

static void kh_ref_key(uint8_t key[16])
{
	for (unsigned i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
}

static void kh_ref_msg(uint8_t *msg, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		msg[i] = (uint8_t)i;
}

static void kh_put_le64(uint8_t *out, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

static void kh_hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

Test(khash, vector_table_complete)
{
	cr_assert_eq(KH_NVEC, KH_MSG_MAX, "want one vector per length 0..63");
	for (unsigned i = 0; i < KH_NVEC; i++) {
		cr_assert_eq(kh_vectors[i].len, i, "%s: length out of order", kh_vectors[i].name);
		cr_assert_eq(strlen(kh_vectors[i].sip64), 16u, "%s", kh_vectors[i].name);
		cr_assert_eq(strlen(kh_vectors[i].sip128), 32u, "%s", kh_vectors[i].name);
	}
}

ParameterizedTestParameters(khash, reference_vectors)
{
	return cr_make_param_array(struct kh_vec, kh_vectors, KH_NVEC);
}

ParameterizedTest(struct kh_vec *tc, khash, reference_vectors)
{
	uint8_t key[16], msg[KH_MSG_MAX], b[16];
	char hex[33];
	struct rg_key128 h;

	kh_ref_key(key);
	kh_ref_msg(msg, tc->len);

	kh_put_le64(b, khash64(key, msg, tc->len));
	kh_hex(b, 8, hex);
	cr_expect_str_eq(hex, tc->sip64, "%s: siphash-2-4-64 %s, want %s", tc->name, hex, tc->sip64);

	khash128(key, msg, tc->len, &h);
	kh_put_le64(b, h.lo);
	kh_put_le64(b + 8, h.hi);
	kh_hex(b, 16, hex);
	cr_expect_str_eq(hex, tc->sip128, "%s: siphash-2-4-128 %s, want %s", tc->name, hex, tc->sip128);
}

/* Every start alignment and every length gives the same hash as the aligned
 * message: the loads must not depend on alignment. */
Test(khash, unaligned_input)
{
	uint8_t key[16], msg[KH_MSG_MAX];
	_Alignas(8) uint8_t buf[KH_MSG_MAX + 8];

	kh_ref_key(key);
	kh_ref_msg(msg, KH_MSG_MAX);
	for (unsigned off = 1; off < 8; off++) {
		memcpy(buf + off, msg, KH_MSG_MAX);
		for (unsigned len = 0; len <= KH_MSG_MAX; len++) {
			struct rg_key128 a, u;

			khash128(key, msg, len, &a);
			khash128(key, buf + off, len, &u);
			cr_assert(a.lo == u.lo && a.hi == u.hi, "khash128 offset %u len %u differs", off, len);
			cr_assert_eq(khash64(key, msg, len), khash64(key, buf + off, len),
				     "khash64 offset %u len %u differs", off, len);
		}
	}
}

/* The bytes just past the input must not influence the result (the tail is
 * read with overlapping loads, never past the end). */
Test(khash, bytes_after_input_ignored)
{
	uint8_t key[16], a[KH_MSG_MAX + 8], b[KH_MSG_MAX + 8];

	kh_ref_key(key);
	kh_ref_msg(a, KH_MSG_MAX);
	memcpy(b, a, KH_MSG_MAX);
	for (unsigned len = 0; len < KH_MSG_MAX; len++) {
		struct rg_key128 ha, hb;

		memset(a + len, 0x00, sizeof(a) - len);
		memset(b + len, 0xff, sizeof(b) - len);
		khash128(key, a, len, &ha);
		khash128(key, b, len, &hb);
		cr_assert(ha.lo == hb.lo && ha.hi == hb.hi, "len %u: trailing bytes changed khash128", len);
		cr_assert_eq(khash64(key, a, len), khash64(key, b, len), "len %u: trailing bytes changed khash64", len);
		kh_ref_msg(a, KH_MSG_MAX);
		kh_ref_msg(b, KH_MSG_MAX);
	}
}

/* Flipping any one key bit changes both halves of the 128-bit output for a
 * typical address. */
Test(khash, every_key_bit_matters)
{
	static const char addr[] = "john.doe@mail.example.org";
	uint8_t key[16];
	struct rg_key128 base;

	kh_ref_key(key);
	khash128(key, addr, sizeof(addr) - 1, &base);
	for (unsigned bit = 0; bit < 128; bit++) {
		struct rg_key128 h;

		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		khash128(key, addr, sizeof(addr) - 1, &h);
		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_expect(h.lo != base.lo && h.hi != base.hi, "key bit %u left a half unchanged", bit);
	}
}

Test(khash, new_key)
{
	uint8_t k1[16], k2[16], zero[16] = { 0 };

	cr_assert_eq(khash_new_key(k1), 0);
	cr_assert_eq(khash_new_key(k2), 0);
	cr_expect_neq(memcmp(k1, zero, 16), 0, "all-zero key from getrandom");
	cr_expect_neq(memcmp(k1, k2, 16), 0, "two fresh keys are equal");
}
