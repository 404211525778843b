/**
 * @module iommu/iova-rbtree
 * The ordered set behind an IOVA domain: `struct iova` nodes in a red-black tree keyed by `pfn_lo`,
 * with parent links so a node can step to its neighbours (rb_prev / rb_next) in O(1) amortised.
 * The allocator's results do not depend on the tree's shape, only on address order; the tree is
 * here so that every operation stays O(log n) with hundreds of thousands of live ranges.
 */

/**
 * One IOVA range, the kernel's `struct iova`: pfns `[pfn_lo, pfn_hi]`, both inclusive, in granule units.
 * The object is the tree node itself (as `struct iova` embeds its `rb_node`), so it stays valid and
 * identical for as long as the range is allocated; after it is freed it must not be used again.
 * @example
 * const iova = alloc_iova(iovad, 4, 0xfffff, true);
 * if (iova !== null) iova_size(iova) // 4
 */
export class Iova {
  /** First pfn of the range. `reserve_iova` may lower it in place. */
  pfn_lo: number;
  /** Last pfn of the range (inclusive). */
  pfn_hi: number;
  /** @internal Red-black links; null when absent. */
  _left: Iova | null = null;
  /** @internal */
  _right: Iova | null = null;
  /** @internal */
  _parent: Iova | null = null;
  /** @internal */
  _red = false;
  /** @internal The tree holding this node, or null once it has been removed. */
  _tree: IovaRbTree | null = null;

  constructor(pfn_lo: number, pfn_hi: number) {
    this.pfn_lo = pfn_lo;
    this.pfn_hi = pfn_hi;
  }
}

/**
 * A red-black tree of disjoint {@link Iova} ranges ordered by address.
 * @example
 * const t = new IovaRbTree(); t.insert(new Iova(5, 9)); t.findContaining(7)?.pfn_lo // 5
 */
export class IovaRbTree {
  // INVARIANT: in-order traversal visits nodes by strictly increasing pfn_lo; ranges are disjoint, so
  //   pfn_hi increases too (prev.pfn_hi < next.pfn_lo).
  // INVARIANT: red-black: the root is black, no red node has a red child, and every path from a node
  //   down to a missing child passes the same number of black nodes (so height <= 2 log2(n + 1)).
  // INVARIANT: node._tree === this exactly for the nodes in the tree; count is their number.
  root: Iova | null = null;
  count = 0;

  /** Lowest node, or null when empty. */
  first(): Iova | null {
    let n = this.root;
    if (n === null) return null;
    while (n._left !== null) n = n._left;
    return n;
  }

  /** Highest node, or null when empty. */
  last(): Iova | null {
    let n = this.root;
    if (n === null) return null;
    while (n._right !== null) n = n._right;
    return n;
  }

  /** In-order successor (rb_next). */
  next(node: Iova): Iova | null {
    let n = node._right;
    if (n !== null) {
      while (n._left !== null) n = n._left;
      return n;
    }
    let c: Iova = node;
    let p = c._parent;
    while (p !== null && c === p._right) {
      c = p;
      p = p._parent;
    }
    return p;
  }

  /** In-order predecessor (rb_prev). */
  prev(node: Iova): Iova | null {
    let n = node._left;
    if (n !== null) {
      while (n._right !== null) n = n._right;
      return n;
    }
    let c: Iova = node;
    let p = c._parent;
    while (p !== null && c === p._left) {
      c = p;
      p = p._parent;
    }
    return p;
  }

  /** The node whose range contains `pfn`, or null. */
  findContaining(pfn: number): Iova | null {
    let n = this.root;
    while (n !== null) {
      if (pfn < n.pfn_lo) n = n._left;
      else if (pfn > n.pfn_hi) n = n._right;
      else return n;
    }
    return null;
  }

  /** The lowest node with `pfn_hi >= pfn`, or null. */
  firstEndingAtOrAbove(pfn: number): Iova | null {
    let n = this.root;
    let best: Iova | null = null;
    while (n !== null) {
      if (n.pfn_hi >= pfn) {
        best = n;
        n = n._left;
      } else {
        n = n._right;
      }
    }
    return best;
  }

  /** Insert by `pfn_lo` from the root. Returns false (and inserts nothing) if `pfn_lo` is taken. */
  insert(node: Iova): boolean {
    let parent: Iova | null = null;
    let n = this.root;
    let left = false;
    while (n !== null) {
      parent = n;
      if (node.pfn_lo < n.pfn_lo) {
        n = n._left;
        left = true;
      } else if (node.pfn_lo > n.pfn_lo) {
        n = n._right;
        left = false;
      } else {
        return false;
      }
    }
    this._link(node, parent, left);
    return true;
  }

  /**
   * Insert `node` as the in-order predecessor of `succ` (the caller guarantees that it sorts between
   * `succ` and `succ`'s current predecessor): the allocator's insertion hint, no key comparisons.
   */
  insertBefore(succ: Iova, node: Iova): void {
    let n = succ._left;
    if (n === null) {
      this._link(node, succ, true);
      return;
    }
    while (n._right !== null) n = n._right;
    this._link(node, n, false);
  }

  private _link(node: Iova, parent: Iova | null, left: boolean): void {
    node._left = null;
    node._right = null;
    node._parent = parent;
    node._red = true;
    node._tree = this;
    if (parent === null) this.root = node;
    else if (left) parent._left = node;
    else parent._right = node;
    this.count++;
    this._insertFixup(node);
  }

  private _rotateLeft(x: Iova): void {
    const y = x._right as Iova;
    x._right = y._left;
    if (y._left !== null) y._left._parent = x;
    const p = x._parent;
    y._parent = p;
    if (p === null) this.root = y;
    else if (x === p._left) p._left = y;
    else p._right = y;
    y._left = x;
    x._parent = y;
  }

  private _rotateRight(x: Iova): void {
    const y = x._left as Iova;
    x._left = y._right;
    if (y._right !== null) y._right._parent = x;
    const p = x._parent;
    y._parent = p;
    if (p === null) this.root = y;
    else if (x === p._right) p._right = y;
    else p._left = y;
    y._right = x;
    x._parent = y;
  }

  private _insertFixup(node: Iova): void {
    let z = node;
    let p = z._parent;
    while (p !== null && p._red) {
      // CHECKED: a red node is never the root, so p has a parent.
      const g = p._parent as Iova;
      if (p === g._left) {
        const u = g._right;
        if (u !== null && u._red) {
          p._red = false;
          u._red = false;
          g._red = true;
          z = g;
        } else {
          if (z === p._right) {
            z = p;
            this._rotateLeft(z);
          }
          (z._parent as Iova)._red = false;
          g._red = true;
          this._rotateRight(g);
        }
      } else {
        const u = g._left;
        if (u !== null && u._red) {
          p._red = false;
          u._red = false;
          g._red = true;
          z = g;
        } else {
          if (z === p._left) {
            z = p;
            this._rotateRight(z);
          }
          (z._parent as Iova)._red = false;
          g._red = true;
          this._rotateLeft(g);
        }
      }
      p = z._parent;
    }
    (this.root as Iova)._red = false;
  }

  /** Replace the subtree at `u` by the one at `v` in u's parent. */
  private _transplant(u: Iova, v: Iova | null): void {
    const p = u._parent;
    if (p === null) this.root = v;
    else if (u === p._left) p._left = v;
    else p._right = v;
    if (v !== null) v._parent = p;
  }

  /** Remove `node` (which must be in this tree). */
  erase(node: Iova): void {
    let removedRed = node._red;
    let x: Iova | null;
    let xParent: Iova | null;
    if (node._left === null) {
      x = node._right;
      xParent = node._parent;
      this._transplant(node, x);
    } else if (node._right === null) {
      x = node._left;
      xParent = node._parent;
      this._transplant(node, x);
    } else {
      let y = node._right;
      while (y._left !== null) y = y._left;
      removedRed = y._red;
      x = y._right;
      if (y._parent === node) {
        xParent = y;
      } else {
        xParent = y._parent;
        this._transplant(y, x);
        y._right = node._right;
        y._right._parent = y;
      }
      this._transplant(node, y);
      y._left = node._left;
      y._left._parent = y;
      y._red = node._red;
    }
    node._left = null;
    node._right = null;
    node._parent = null;
    node._tree = null;
    this.count--;
    if (!removedRed) this._eraseFixup(x, xParent);
  }

  private _eraseFixup(start: Iova | null, startParent: Iova | null): void {
    let x = start;
    let parent = startParent;
    while (x !== this.root && (x === null || !x._red)) {
      // CHECKED: x is not the root, so it has a parent; its sibling exists because x's side is one
      //   black node short, which the sibling's side can only be if it is non-empty.
      const p = parent as Iova;
      if (x === p._left) {
        let w = p._right as Iova;
        if (w._red) {
          w._red = false;
          p._red = true;
          this._rotateLeft(p);
          w = p._right as Iova;
        }
        if ((w._left === null || !w._left._red) && (w._right === null || !w._right._red)) {
          w._red = true;
          x = p;
          parent = p._parent;
        } else {
          if (w._right === null || !w._right._red) {
            (w._left as Iova)._red = false;
            w._red = true;
            this._rotateRight(w);
            w = p._right as Iova;
          }
          w._red = p._red;
          p._red = false;
          if (w._right !== null) w._right._red = false;
          this._rotateLeft(p);
          x = this.root;
          break;
        }
      } else {
        let w = p._left as Iova;
        if (w._red) {
          w._red = false;
          p._red = true;
          this._rotateRight(p);
          w = p._left as Iova;
        }
        if ((w._left === null || !w._left._red) && (w._right === null || !w._right._red)) {
          w._red = true;
          x = p;
          parent = p._parent;
        } else {
          if (w._left === null || !w._left._red) {
            (w._right as Iova)._red = false;
            w._red = true;
            this._rotateLeft(w);
            w = p._left as Iova;
          }
          w._red = p._red;
          p._red = false;
          if (w._left !== null) w._left._red = false;
          this._rotateRight(p);
          x = this.root;
          break;
        }
      }
    }
    if (x !== null) x._red = false;
  }

  /** Drop every node (put_iova_domain); the nodes are marked as removed. */
  clear(): void {
    const stack: Iova[] = [];
    if (this.root !== null) stack.push(this.root);
    while (stack.length > 0) {
      const n = stack.pop() as Iova;
      if (n._left !== null) stack.push(n._left);
      if (n._right !== null) stack.push(n._right);
      n._left = null;
      n._right = null;
      n._parent = null;
      n._tree = null;
    }
    this.root = null;
    this.count = 0;
  }

  /**
   * Check every INVARIANT above; throws an Error naming the first one broken. For tests: O(n).
   * @example tree.checkInvariants()
   */
  checkInvariants(): void {
    const root = this.root;
    if (root === null) {
      if (this.count !== 0) throw new Error(`rbtree: empty but count ${this.count}`);
      return;
    }
    if (root._red) throw new Error('rbtree: red root');
    if (root._parent !== null) throw new Error('rbtree: root has a parent');
    let seen = 0;
    const walk = (n: Iova | null, lo: number, hi: number): number => {
      if (n === null) return 1;
      seen++;
      if (n._tree !== this) throw new Error(`rbtree: node [${n.pfn_lo}, ${n.pfn_hi}] not owned`);
      if (n.pfn_lo > n.pfn_hi) throw new Error(`rbtree: inverted node [${n.pfn_lo}, ${n.pfn_hi}]`);
      if (!(n.pfn_lo > lo && n.pfn_hi < hi)) throw new Error(`rbtree: node [${n.pfn_lo}, ${n.pfn_hi}] out of order`);
      for (const c of [n._left, n._right]) {
        if (c === null) continue;
        if (c._parent !== n) throw new Error(`rbtree: bad parent link under [${n.pfn_lo}, ${n.pfn_hi}]`);
        if (n._red && c._red) throw new Error(`rbtree: red node [${n.pfn_lo}, ${n.pfn_hi}] has a red child`);
      }
      const bl = walk(n._left, lo, n.pfn_lo);
      const br = walk(n._right, n.pfn_hi, hi);
      if (bl !== br) throw new Error(`rbtree: black heights differ under [${n.pfn_lo}, ${n.pfn_hi}]`);
      return bl + (n._red ? 0 : 1);
    };
    walk(root, -Infinity, Infinity);
    if (seen !== this.count) throw new Error(`rbtree: count ${this.count} but ${seen} nodes`);
  }
}
