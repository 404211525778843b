/*
 * coalesce.c - native C yardstick for dmasim's page-coalescing benchmark.
 *
 * A self-contained re-implementation (written for dmasim, not copied from the
 * kernel) of the rules Linux's lib/scatterlist.c uses to turn an array of
 * pages into a chained scatter-gather table:
 *
 *   - a 32-byte struct scatterlist whose page_link carries a page plus the
 *     CHAIN (0x1) and END (0x2) bits;
 *   - slot arrays ("chunks") of at most SG_MAX_SINGLE_ALLOC = 128 slots
 *     (one 4 KiB page), zeroed with the END bit on their last slot, linked
 *     through that last slot when more room is needed;
 *   - sg_alloc_append_table_from_pages: continuation merge into the previous
 *     entry, chunk counting, filling, left_pages pre-sizing, END only on the
 *     final call;
 *   - sg_alloc_table_from_pages_segment (one call on a zeroed append table)
 *     and the count-driven chunk walk of sg_free_table/sg_free_append_table.
 *
 * Pages are given as an array of pfns.  Inside an entry a page is stored as
 * pfn << 6, i.e. the address a 64-byte struct page would have in a vmemmap
 * based at 0, so the two low flag bits are always free.
 *
 * Usage:
 *   coalesce.bin                             full matrix, one JSON line per case
 *   coalesce.bin N LAYOUT MAX_SEGMENT MODE   one case
 *       LAYOUT      contiguous | scattered | runs
 *       MAX_SEGMENT bytes, e.g. 4294967295 (or UINT_MAX) or 65536
 *       MODE        oneshot | append512
 *   coalesce.bin --selftest                  only the rule checks
 *
 * Each case: 3 warm-up runs (the first one verifies the table entry by entry
 * against the input pages), then at least 11 timed runs (more for small N,
 * up to a time budget).  A run is build + free, timed with CLOCK_MONOTONIC;
 * the reported figure is the median ns per input page.  Every run checks the
 * entry count is unchanged and that every chunk allocated was freed with the
 * size it was allocated with.
 *
 * Build: cc -O2 -Wall -Wextra -o coalesce.bin coalesce.c
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* ------------------------------------------------------------------------ */
/* Types and constants                                                       */
/* ------------------------------------------------------------------------ */

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT) /* unsigned long, as in the kernel */

#define SG_CHAIN 0x01UL
#define SG_END 0x02UL
#define SG_FLAG_BITS (SG_CHAIN | SG_END)

/* A page is encoded as pfn << PAGE_ENC_SHIFT (a 64-byte struct page). */
#define PAGE_ENC_SHIFT 6

#define E_INVAL 22
#define E_NOMEM 12

typedef uint64_t dma_addr_t;

struct scatterlist {
	unsigned long page_link;
	unsigned int offset;
	unsigned int length;
	dma_addr_t dma_address;
	unsigned int dma_length;
	unsigned int dma_flags;
};

/* Compile-time check (C99 style): the entry must be 32 bytes. */
typedef char scatterlist_is_32_bytes[sizeof(struct scatterlist) == 32 ? 1 : -1];

#define SG_MAX_SINGLE_ALLOC ((unsigned int)(PAGE_SIZE / sizeof(struct scatterlist)))

struct sg_table {
	struct scatterlist *sgl;
	unsigned int nents;      /* DMA-side count (== orig_nents here) */
	unsigned int orig_nents; /* data entries */
};

struct sg_append_table {
	struct sg_table sgt;
	struct scatterlist *prv;  /* last data entry written */
	unsigned int total_nents; /* slots allocated minus link slots */
};

/* ------------------------------------------------------------------------ */
/* Chunk allocation with leak / size accounting                             */
/* ------------------------------------------------------------------------ */

static long live_chunks;
static long long live_slots;
static unsigned long long alloc_calls;

/* Full chunk: one page-sized block; anything smaller: an array of n. */
static struct scatterlist *chunk_alloc(unsigned int n)
{
	struct scatterlist *p;

	if (n == SG_MAX_SINGLE_ALLOC)
		p = malloc(PAGE_SIZE);
	else
		p = malloc((size_t)n * sizeof(struct scatterlist));
	if (p != NULL) {
		live_chunks++;
		live_slots += n;
		alloc_calls++;
	}
	return p;
}

static void chunk_free(struct scatterlist *p, unsigned int n)
{
	live_chunks--;
	live_slots -= n;
	free(p);
}

/* ------------------------------------------------------------------------ */
/* Entry helpers                                                             */
/* ------------------------------------------------------------------------ */

static inline unsigned long page_of_pfn(unsigned long pfn)
{
	return pfn << PAGE_ENC_SHIFT;
}

static inline unsigned long entry_pfn(const struct scatterlist *sg)
{
	return (sg->page_link & ~SG_FLAG_BITS) >> PAGE_ENC_SHIFT;
}

static inline int is_end(const struct scatterlist *sg)
{
	return (sg->page_link & SG_END) != 0;
}

static inline int is_link(const struct scatterlist *sg)
{
	return (sg->page_link & SG_CHAIN) != 0;
}

static inline struct scatterlist *link_target(const struct scatterlist *sg)
{
	return (struct scatterlist *)(sg->page_link & ~SG_FLAG_BITS);
}

/* Next data entry: NULL after END; one hop through a link slot. */
static inline struct scatterlist *next_entry(struct scatterlist *sg)
{
	if (is_end(sg))
		return NULL;
	sg++;
	if (is_link(sg))
		sg = link_target(sg);
	return sg;
}

/* Zero n slots and put END on the last, like sg_init_table. */
static inline void init_slots(struct scatterlist *sg, unsigned int n)
{
	memset(sg, 0, (size_t)n * sizeof(*sg));
	sg[n - 1].page_link |= SG_END;
}

/* Store a page; the slot's existing CHAIN/END bits survive. */
static inline void set_entry(struct scatterlist *sg, unsigned long pfn,
			     unsigned int len, unsigned int off)
{
	sg->page_link = (sg->page_link & SG_FLAG_BITS) | page_of_pfn(pfn);
	sg->offset = off;
	sg->length = len;
}

/* Turn a slot into a link to another array (END cleared). */
static inline void make_link(struct scatterlist *slot, struct scatterlist *to)
{
	slot->offset = 0;
	slot->length = 0;
	slot->page_link = ((unsigned long)to | SG_CHAIN) & ~SG_END;
}

static inline void set_end(struct scatterlist *sg)
{
	sg->page_link = (sg->page_link | SG_END) & ~SG_CHAIN;
}

/* b directly follows a in physical memory. */
static inline int follows(unsigned long b, unsigned long a)
{
	return b == a + 1;
}

/* ------------------------------------------------------------------------ */
/* Freeing: walk chunks by a count of data slots                             */
/* ------------------------------------------------------------------------ */

/*
 * Every chunk but the last is assumed to hold SG_MAX_SINGLE_ALLOC slots, the
 * last of them a link; the final chunk holds whatever count remains.
 */
static void free_chunks(struct sg_table *t, unsigned int data_slots)
{
	struct scatterlist *chunk = t->sgl;

	if (chunk == NULL)
		return;
	while (data_slots != 0) {
		struct scatterlist *following = NULL;
		unsigned int slots = data_slots;
		unsigned int used = data_slots;

		if (data_slots > SG_MAX_SINGLE_ALLOC) {
			slots = SG_MAX_SINGLE_ALLOC;
			used = SG_MAX_SINGLE_ALLOC - 1;
			following = link_target(&chunk[SG_MAX_SINGLE_ALLOC - 1]);
		}
		data_slots -= used;
		chunk_free(chunk, slots);
		chunk = following;
	}
	t->sgl = NULL;
}

static void sg_free_table(struct sg_table *t)
{
	free_chunks(t, t->orig_nents);
}

static void sg_free_append_table(struct sg_append_table *a)
{
	free_chunks(&a->sgt, a->total_nents);
}

/* ------------------------------------------------------------------------ */
/* Building from pages                                                       */
/* ------------------------------------------------------------------------ */

/*
 * Slot for the next entry after cur.  The END slot of the current chunk is
 * only used for data when it is the last slot still needed; otherwise a new
 * chunk of min(needed, 128) slots is allocated and the END slot becomes the
 * link to it.  Returns NULL when allocation fails.
 */
static struct scatterlist *grab_slot(struct sg_append_table *a,
				     struct scatterlist *cur,
				     unsigned long needed)
{
	struct scatterlist *nxt = NULL, *fresh;
	unsigned int n;

	if (cur != NULL) {
		nxt = next_entry(cur);
		if (!is_end(nxt) || needed == 1)
			return nxt;
	}
	n = needed < SG_MAX_SINGLE_ALLOC ? (unsigned int)needed : SG_MAX_SINGLE_ALLOC;
	fresh = chunk_alloc(n);
	if (fresh == NULL)
		return NULL;
	init_slots(fresh, n);
	if (cur != NULL) {
		a->total_nents += n - 1;
		make_link(nxt, fresh);
	} else {
		a->sgt.sgl = fresh;
		a->total_nents = n;
	}
	return fresh;
}

/* Index one past the end of the chunk that starts at 'start'. */
static inline unsigned int chunk_end(const unsigned long *pfns, unsigned int start,
				     unsigned int n_pages, unsigned int max_segment)
{
	unsigned int j, run = 0;

	for (j = start + 1; j < n_pages; j++) {
		run += (unsigned int)PAGE_SIZE;
		if (run >= max_segment || !follows(pfns[j], pfns[j - 1]))
			break;
	}
	return j;
}

static int sg_alloc_append_table_from_pages(struct sg_append_table *a,
					    const unsigned long *pfns,
					    unsigned int n_pages,
					    unsigned int offset,
					    unsigned long size,
					    unsigned int max_segment,
					    unsigned int left_pages)
{
	struct scatterlist *s = a->prv;
	unsigned int chunks, i, run, cur, added = 0, saved_len = 0;

	max_segment &= ~(unsigned int)(PAGE_SIZE - 1);
	if (max_segment < PAGE_SIZE)
		return -E_INVAL;

	if (a->prv != NULL) {
		struct scatterlist *p = a->prv;
		unsigned long after;

		if (offset != 0)
			return -E_INVAL;
		saved_len = p->length;
		/* pfn of the byte just past the previous entry */
		after = ((entry_pfn(p) << PAGE_SHIFT) + p->offset + saved_len) >> PAGE_SHIFT;
		if (pfns[0] == after) {
			unsigned long last = after - 1;

			while (n_pages != 0 && follows(pfns[0], last)) {
				/* u64 sum: a 0xFFFFF000-byte entry cannot wrap */
				if (p->length + PAGE_SIZE > max_segment)
					break;
				p->length += (unsigned int)PAGE_SIZE;
				last = pfns[0];
				pfns++;
				n_pages--;
			}
			if (n_pages == 0)
				goto done;
		}
	}

	/* How many entries the remaining pages need. */
	chunks = 1;
	run = 0;
	for (i = 1; i < n_pages; i++) {
		run += (unsigned int)PAGE_SIZE;
		if (run >= max_segment || !follows(pfns[i], pfns[i - 1])) {
			chunks++;
			run = 0;
		}
	}

	cur = 0;
	for (i = 0; i < chunks; i++) {
		unsigned int j = chunk_end(pfns, cur, n_pages, max_segment);
		unsigned int bytes;

		s = grab_slot(a, s, (unsigned long)(chunks - i) + left_pages);
		if (s == NULL) {
			if (a->prv != NULL)
				a->prv->length = saved_len;
			return -E_NOMEM;
		}
		bytes = ((j - cur) << PAGE_SHIFT) - offset;
		set_entry(s, pfns[cur], size < bytes ? (unsigned int)size : bytes, offset);
		added++;
		size -= bytes; /* wraps modulo 2^64 if size was short */
		offset = 0;
		cur = j;
	}
	a->sgt.nents += added;
	a->sgt.orig_nents = a->sgt.nents;
	a->prv = s;
done:
	if (left_pages == 0)
		set_end(s);
	return 0;
}

static int sg_alloc_table_from_pages_segment(struct sg_table *t,
					     const unsigned long *pfns,
					     unsigned int n_pages,
					     unsigned int offset,
					     unsigned long size,
					     unsigned int max_segment)
{
	struct sg_append_table local;
	int err;

	memset(&local, 0, sizeof(local));
	err = sg_alloc_append_table_from_pages(&local, pfns, n_pages, offset, size,
					       max_segment, 0);
	if (err != 0) {
		sg_free_append_table(&local);
		return err;
	}
	*t = local.sgt;
	if (local.total_nents != t->orig_nents)
		fprintf(stderr, "warning: total_nents %u != orig_nents %u\n",
			local.total_nents, t->orig_nents);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                              */
/* ------------------------------------------------------------------------ */

static void die(const char *what)
{
	fprintf(stderr, "coalesce: %s\n", what);
	exit(1);
}

/*
 * Walk nents entries from sgl and check they describe exactly pfns[0..n)
 * as whole pages, greedily coalesced: each entry is a maximal pfn run cut at
 * max_segment (aligned) bytes; only the last entry carries END.
 */
static void check_table(struct scatterlist *sgl, unsigned int nents,
			const unsigned long *pfns, unsigned int n,
			unsigned int max_segment)
{
	struct scatterlist *sg = sgl;
	unsigned int e, idx = 0;
	unsigned int cap = max_segment & ~(unsigned int)(PAGE_SIZE - 1);

	for (e = 0; e < nents; e++) {
		unsigned int k, pages;

		if (sg == NULL)
			die("verify: list ends before nents entries");
		if (is_link(sg))
			die("verify: walked onto a link slot");
		if (sg->offset != 0 || sg->length == 0 || (sg->length & (PAGE_SIZE - 1)) != 0)
			die("verify: entry is not whole pages");
		if (sg->length > cap)
			die("verify: entry longer than max_segment");
		pages = sg->length >> PAGE_SHIFT;
		for (k = 0; k < pages; k++, idx++) {
			if (idx >= n || pfns[idx] != entry_pfn(sg) + k)
				die("verify: entry pages differ from the input");
		}
		/* greedy: the next page must not have been mergeable */
		if (idx < n && sg->length + PAGE_SIZE <= cap &&
		    follows(pfns[idx], pfns[idx - 1]))
			die("verify: a mergeable page started a new entry");
		if ((e + 1 == nents) != is_end(sg))
			die("verify: END mark misplaced");
		sg = next_entry(sg);
	}
	if (idx != n)
		die("verify: table covers fewer pages than the input");
}

/* Simple greedy reference: entries a coalescer must produce. */
static unsigned int reference_count(const unsigned long *pfns, unsigned int n,
				    unsigned int max_segment)
{
	unsigned int cap = (max_segment & ~(unsigned int)(PAGE_SIZE - 1)) >> PAGE_SHIFT;
	unsigned int i, count = 1, in_entry = 1;

	for (i = 1; i < n; i++) {
		if (in_entry < cap && follows(pfns[i], pfns[i - 1])) {
			in_entry++;
		} else {
			count++;
			in_entry = 1;
		}
	}
	return count;
}

static void check_no_leak(void)
{
	if (live_chunks != 0 || live_slots != 0)
		die("leak: chunks or slots still allocated after free");
}

/* ------------------------------------------------------------------------ */
/* Self-test: small vectors with known answers + randomized cross-checks    */
/* ------------------------------------------------------------------------ */

static uint64_t sm_state;

static uint64_t splitmix64(void)
{
	uint64_t z = (sm_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

struct vec {
	unsigned int n;
	unsigned long pfn[8];
	unsigned long size;
	unsigned int max_seg;
	int ret;
	unsigned int want;
};

static void fail_vec(unsigned int i, const char *what)
{
	fprintf(stderr, "coalesce: selftest vector %u: %s\n", i, what);
	exit(1);
}

static void selftest(void)
{
	const unsigned int P = (unsigned int)PAGE_SIZE;
	const unsigned int MAX = UINT_MAX;
	/* pfns are shifted by one, as a harness mapping "pfn 0" to page 1 would */
	static const struct vec vecs[] = {
		{ 1, { 1 }, 4096, 0, -E_INVAL, 0 },
		{ 1, { 1 }, 4096, 4095, -E_INVAL, 0 },
		{ 1, { 1 }, 4096, 4097, 0, 1 },
		{ 1, { 1 }, 4096, UINT_MAX, 0, 1 },
		{ 1, { 1 }, 1, UINT_MAX, 0, 1 },
		{ 2, { 1, 2 }, 2 * 4096, UINT_MAX, 0, 1 },
		{ 2, { 2, 1 }, 2 * 4096, UINT_MAX, 0, 2 },
		{ 2, { 1, 1 }, 2 * 4096, UINT_MAX, 0, 2 },
		{ 3, { 1, 2, 3 }, 3 * 4096, UINT_MAX, 0, 1 },
		{ 3, { 1, 3, 2 }, 3 * 4096, UINT_MAX, 0, 3 },
		{ 3, { 1, 2, 4 }, 3 * 4096, UINT_MAX, 0, 2 },
		{ 3, { 2, 3, 5 }, 3 * 4096, UINT_MAX, 0, 2 },
		{ 3, { 2, 4, 5 }, 3 * 4096, UINT_MAX, 0, 2 },
		{ 4, { 1, 2, 4, 5 }, 4 * 4096, UINT_MAX, 0, 2 },
		{ 5, { 1, 2, 4, 5, 6 }, 5 * 4096, UINT_MAX, 0, 2 },
		{ 5, { 1, 2, 4, 5, 7 }, 5 * 4096, UINT_MAX, 0, 3 },
		{ 5, { 1, 2, 3, 4, 5 }, 5 * 4096, UINT_MAX, 0, 1 },
		{ 5, { 1, 2, 3, 4, 5 }, 5 * 4096, 2 * 4096, 0, 3 },
		{ 6, { 1, 2, 3, 4, 5, 6 }, 6 * 4096, 2 * 4096, 0, 3 },
		{ 6, { 1, 3, 4, 5, 6, 7 }, 6 * 4096, 2 * 4096, 0, 4 },
		{ 6, { 1, 2, 4, 5, 6, 7 }, 6 * 4096, 2 * 4096, 0, 3 },
	};
	unsigned int i, r;

	for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		const struct vec *v = &vecs[i];
		struct sg_table t;
		int err;

		memset(&t, 0xA5, sizeof(t)); /* must stay untouched on error */
		err = sg_alloc_table_from_pages_segment(&t, v->pfn, v->n, 0, v->size, v->max_seg);
		if (err != v->ret)
			fail_vec(i, "unexpected return code");
		if (err != 0) {
			check_no_leak();
			if (t.nents != 0xA5A5A5A5u)
				fail_vec(i, "table written on error");
			continue;
		}
		if (t.nents != v->want || t.orig_nents != v->want)
			fail_vec(i, "wrong entry count");
		if (v->size == 1 && t.sgl[0].length != 1)
			fail_vec(i, "size not applied to the last entry");
		sg_free_table(&t);
		check_no_leak();
	}

	/* Short size wraps: [0,1,3] offset 100 size 5000 -> (0,100,5000), (3,0,4096). */
	{
		static const unsigned long p[3] = { 1, 2, 4 };
		struct sg_table t;
		struct scatterlist *e1;

		if (sg_alloc_table_from_pages_segment(&t, p, 3, 100, 5000, MAX) != 0 || t.nents != 2)
			fail_vec(100, "short-size table");
		e1 = next_entry(t.sgl);
		if (entry_pfn(t.sgl) != 1 || t.sgl[0].offset != 100 || t.sgl[0].length != 5000 ||
		    entry_pfn(e1) != 4 || e1->offset != 0 || e1->length != P || !is_end(e1))
			fail_vec(100, "short-size entries");
		sg_free_table(&t);
		check_no_leak();
	}

	/* Append: [0,1,2] (3 left) then [3,4,5] -> one entry of 6P, 4 slots. */
	{
		static const unsigned long p[6] = { 1, 2, 3, 4, 5, 6 };
		struct sg_append_table a;

		memset(&a, 0, sizeof(a));
		if (sg_alloc_append_table_from_pages(&a, p, 3, 0, 3 * P, MAX, 3) != 0 ||
		    sg_alloc_append_table_from_pages(&a, p + 3, 3, 0, 3 * P, MAX, 0) != 0)
			fail_vec(101, "append failed");
		if (a.sgt.nents != 1 || a.sgt.orig_nents != 1 || a.total_nents != 4 ||
		    a.sgt.sgl[0].length != 6 * P || !is_end(&a.sgt.sgl[0]) || a.prv != a.sgt.sgl)
			fail_vec(101, "append full merge");
		sg_free_append_table(&a);
		check_no_leak();
	}
	/* Append: [0,1,2] then [4,5,6] -> 2 entries in the 4 pre-allocated slots. */
	{
		static const unsigned long p[6] = { 1, 2, 3, 5, 6, 7 };
		struct sg_append_table a;

		memset(&a, 0, sizeof(a));
		if (sg_alloc_append_table_from_pages(&a, p, 3, 0, 3 * P, MAX, 3) != 0 ||
		    sg_alloc_append_table_from_pages(&a, p + 3, 3, 0, 3 * P, MAX, 0) != 0)
			fail_vec(102, "append failed");
		if (a.sgt.nents != 2 || a.total_nents != 4 || a.prv != &a.sgt.sgl[1] ||
		    a.sgt.sgl[1].length != 3 * P || !is_end(&a.sgt.sgl[1]))
			fail_vec(102, "append no merge");
		sg_free_append_table(&a);
		check_no_leak();
	}
	/* Append with max 12P: [0,1,3,4,5,6] (6 left) then [7..12] -> 2 entries, 10P. */
	{
		static const unsigned long p[12] = { 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
		struct sg_append_table a;

		memset(&a, 0, sizeof(a));
		if (sg_alloc_append_table_from_pages(&a, p, 6, 0, 6 * P, 12 * P, 6) != 0 ||
		    a.total_nents != 8 || a.sgt.nents != 2 ||
		    sg_alloc_append_table_from_pages(&a, p + 6, 6, 0, 6 * P, 12 * P, 0) != 0)
			fail_vec(103, "append failed");
		if (a.sgt.nents != 2 || a.sgt.sgl[1].length != 10 * P || !is_end(&a.sgt.sgl[1]))
			fail_vec(103, "append partial merge");
		/* a continuation call with an offset is refused */
		if (sg_alloc_append_table_from_pages(&a, p, 1, 1, P, 12 * P, 0) != -E_INVAL)
			fail_vec(103, "continuation offset accepted");
		sg_free_append_table(&a);
		check_no_leak();
	}
	/* Chunk layout: 300 scattered pages -> chunks of 128 + 128 + 46 slots. */
	{
		unsigned long p[300];
		struct sg_table t;

		for (i = 0; i < 300; i++)
			p[i] = 10 + 2 * i;
		alloc_calls = 0;
		if (sg_alloc_table_from_pages_segment(&t, p, 300, 0, 300 * 4096UL, MAX) != 0 ||
		    t.nents != 300 || alloc_calls != 3 || live_slots != 302)
			fail_vec(104, "300-entry chunk layout");
		check_table(t.sgl, t.nents, p, 300, MAX);
		sg_free_table(&t);
		check_no_leak();
	}
	/* A 4 GiB contiguous buffer needs two entries: 0xFFFFF000 is the cap. */
	{
		unsigned long *p = malloc(1048576 * sizeof(*p));
		struct sg_append_table a;
		struct sg_table t;

		if (p == NULL)
			die("out of memory");
		for (i = 0; i < 1048576; i++)
			p[i] = 0x100000 + i;
		if (sg_alloc_table_from_pages_segment(&t, p, 1048576, 0, 1UL << 32, MAX) != 0 ||
		    t.nents != 2 || t.sgl[0].length != 0xFFFFF000u || t.sgl[1].length != P)
			fail_vec(105, "4 GiB oneshot");
		sg_free_table(&t);
		memset(&a, 0, sizeof(a));
		for (i = 0; i < 1048576; i += 4096) {
			if (sg_alloc_append_table_from_pages(&a, p + i, 4096, 0, 4096UL * 4096,
							     MAX, 1048576 - i - 4096) != 0)
				fail_vec(105, "4 GiB append");
		}
		if (a.sgt.nents != 2 || a.sgt.sgl[0].length != 0xFFFFF000u)
			fail_vec(105, "4 GiB append entries");
		sg_free_append_table(&a);
		free(p);
		check_no_leak();
	}

	/* Randomized: oneshot and append (random call sizes) vs the greedy reference. */
	sm_state = 12345;
	for (r = 0; r < 400; r++) {
		unsigned int n = 1 + (unsigned int)(splitmix64() % 700);
		unsigned int ms = (unsigned int)(1 + splitmix64() % 9) * P + (unsigned int)(splitmix64() % P);
		unsigned long *p = malloc(n * sizeof(*p));
		unsigned long pfn = 100000;
		unsigned int want, done;
		struct sg_table t;
		struct sg_append_table a;

		if (p == NULL)
			die("out of memory");
		if (r % 7 == 0)
			ms = UINT_MAX;
		for (i = 0; i < n; i++) {
			uint64_t k = splitmix64() % 8;

			pfn = k == 0 ? pfn + 2 + splitmix64() % 5 : k == 1 ? pfn - 1 : k == 2 ? pfn : pfn + 1;
			p[i] = pfn;
		}
		want = reference_count(p, n, ms);
		if (sg_alloc_table_from_pages_segment(&t, p, n, 0, (unsigned long)n * P, ms) != 0 ||
		    t.nents != want)
			fail_vec(200 + r, "random oneshot count");
		check_table(t.sgl, t.nents, p, n, ms);
		sg_free_table(&t);
		check_no_leak();

		memset(&a, 0, sizeof(a));
		for (done = 0; done < n;) {
			unsigned int k = 1 + (unsigned int)(splitmix64() % 200);

			if (k > n - done)
				k = n - done;
			if (sg_alloc_append_table_from_pages(&a, p + done, k, 0, (unsigned long)k * P,
							     ms, n - done - k) != 0)
				fail_vec(200 + r, "random append failed");
			done += k;
		}
		if (a.sgt.nents != want || a.sgt.orig_nents != want)
			fail_vec(200 + r, "random append count");
		check_table(a.sgt.sgl, a.sgt.nents, p, n, ms);
		sg_free_append_table(&a);
		check_no_leak();
		free(p);
	}
}

/* ------------------------------------------------------------------------ */
/* Benchmark                                                                 */
/* ------------------------------------------------------------------------ */

#define BASE_PFN 0x100000UL
#define RUNS_SEED 0x2545F4914F6CDD1DULL
#define WARMUP_RUNS 3
#define MIN_RUNS 11
#define MAX_RUNS 20001
#define BUDGET_NS 200000000.0 /* keep timing until this much, at least MIN_RUNS */
#define APPEND_STEP 512u

enum layout { L_CONTIGUOUS, L_SCATTERED, L_RUNS };
enum mode { M_ONESHOT, M_APPEND512 };

static const char *const layout_names[] = { "contiguous", "scattered", "runs" };
static const char *const mode_names[] = { "oneshot", "append512" };

static void make_pages(unsigned long *p, unsigned int n, enum layout layout)
{
	unsigned int i = 0;

	switch (layout) {
	case L_CONTIGUOUS:
		for (i = 0; i < n; i++)
			p[i] = BASE_PFN + i;
		break;
	case L_SCATTERED:
		for (i = 0; i < n; i++)
			p[i] = BASE_PFN + 2UL * i;
		break;
	case L_RUNS: {
		unsigned long pfn = BASE_PFN;

		sm_state = RUNS_SEED;
		while (i < n) {
			unsigned int run = 1 + (unsigned int)(splitmix64() % 16);
			unsigned int gap = 1 + (unsigned int)(splitmix64() % 16);
			unsigned int k;

			for (k = 0; k < run && i < n; k++)
				p[i++] = pfn++;
			pfn += gap; /* gap = pfns skipped between runs */
		}
		break;
	}
	}
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One build + free; returns elapsed ns and the entry count. */
static double run_once(const unsigned long *p, unsigned int n, unsigned int max_segment,
		       enum mode mode, int verify, unsigned int *nents)
{
	double t0, t1, t2, t3;

	if (mode == M_ONESHOT) {
		struct sg_table t;

		t0 = now_ns();
		if (sg_alloc_table_from_pages_segment(&t, p, n, 0, (unsigned long)n * PAGE_SIZE,
						      max_segment) != 0)
			die("sg_alloc_table_from_pages_segment failed");
		t1 = now_ns();
		*nents = t.nents;
		if (verify)
			check_table(t.sgl, t.nents, p, n, max_segment);
		t2 = now_ns();
		sg_free_table(&t);
		t3 = now_ns();
	} else {
		struct sg_append_table a;
		unsigned int done, k;

		t0 = now_ns();
		memset(&a, 0, sizeof(a));
		for (done = 0; done < n; done += k) {
			k = n - done < APPEND_STEP ? n - done : APPEND_STEP;
			if (sg_alloc_append_table_from_pages(&a, p + done, k, 0,
							     (unsigned long)k * PAGE_SIZE,
							     max_segment, n - done - k) != 0)
				die("sg_alloc_append_table_from_pages failed");
		}
		t1 = now_ns();
		*nents = a.sgt.nents;
		if (verify) {
			if (a.sgt.orig_nents != a.sgt.nents)
				die("verify: nents != orig_nents");
			check_table(a.sgt.sgl, a.sgt.nents, p, n, max_segment);
		}
		t2 = now_ns();
		sg_free_append_table(&a);
		t3 = now_ns();
	}
	check_no_leak();
	return (t1 - t0) + (t3 - t2);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double times[MAX_RUNS];

static void bench_case(unsigned int n, enum layout layout, unsigned int max_segment,
		       enum mode mode)
{
	unsigned long *p = malloc((size_t)n * sizeof(*p));
	unsigned int nents = 0, first = 0, runs = 0, i;
	double spent = 0, med;

	if (p == NULL)
		die("out of memory");
	make_pages(p, n, layout);

	for (i = 0; i < WARMUP_RUNS; i++) {
		run_once(p, n, max_segment, mode, i == 0, &nents);
		if (i == 0) {
			first = nents;
			if (nents != reference_count(p, n, max_segment))
				die("entry count differs from the greedy reference");
		} else if (nents != first) {
			die("entry count changed between runs");
		}
	}
	while (runs < MAX_RUNS && (runs < MIN_RUNS || spent < BUDGET_NS)) {
		double dt = run_once(p, n, max_segment, mode, 0, &nents);

		if (nents != first)
			die("entry count changed between runs");
		times[runs++] = dt;
		spent += dt;
	}
	qsort(times, runs, sizeof(times[0]), cmp_double);
	med = runs % 2 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;

	printf("{\"n\":%u,\"layout\":\"%s\",\"max_segment\":%u,\"mode\":\"%s\","
	       "\"ns_per_page\":%.4f,\"nents\":%u}\n",
	       n, layout_names[layout], max_segment, mode_names[mode], med / n, first);
	fflush(stdout);
	free(p);
}

static int parse_index(const char *s, const char *const *names, int count)
{
	int i;

	for (i = 0; i < count; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int parse_uint(const char *s, unsigned int *out)
{
	char *end;
	unsigned long v;

	if (strcmp(s, "UINT_MAX") == 0) {
		*out = UINT_MAX;
		return 0;
	}
	if (*s == '-' || *s == '\0')
		return -1;
	v = strtoul(s, &end, 0);
	if (*end != '\0' || v > UINT_MAX)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: coalesce [N LAYOUT MAX_SEGMENT MODE | --selftest]\n"
		"  LAYOUT: contiguous|scattered|runs  MODE: oneshot|append512\n"
		"  MAX_SEGMENT: bytes (>= 4096), e.g. 4294967295 or 65536\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const unsigned int ns[] = { 4096, 262144, 1048576 };
	static const unsigned int segs[] = { UINT_MAX, 65536 };
	unsigned int a, b, c, d;

#if defined(__GLIBC__)
	/*
	 * Keep freed chunks in the process: without this glibc returns the heap
	 * top to the kernel after every free and each run page-faults its
	 * chunks back in, which measures the VM, not the algorithm (the kernel
	 * allocates its chunks from already-present pages).
	 */
	mallopt(M_TRIM_THRESHOLD, INT_MAX);
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
#endif
	selftest();
	if (argc == 2 && strcmp(argv[1], "--selftest") == 0) {
		fprintf(stderr, "coalesce: selftest passed\n");
		return 0;
	}
	if (argc == 5) {
		unsigned int n, seg;
		int layout = parse_index(argv[2], layout_names, 3);
		int mode = parse_index(argv[4], mode_names, 2);

		if (parse_uint(argv[1], &n) != 0 || n == 0 || layout < 0 || mode < 0 ||
		    parse_uint(argv[3], &seg) != 0 || seg < PAGE_SIZE)
			usage();
		bench_case(n, (enum layout)layout, seg, (enum mode)mode);
		return 0;
	}
	if (argc != 1)
		usage();
	for (a = 0; a < 3; a++)
		for (b = 0; b < 3; b++)
			for (c = 0; c < 2; c++)
				for (d = 0; d < 2; d++)
					bench_case(ns[a], (enum layout)b, segs[c], (enum mode)d);
	return 0;
}
