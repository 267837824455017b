package envelope

import "testing"

func TestBudgetSpend(t *testing.T) {
	b := NewBudget(5)
	if !b.Spend(3) || b.Spent() != 3 {
		t.Fatalf("Spend(3): spent %d", b.Spent())
	}
	if b.Spend(3) || b.Spent() != 3 {
		t.Fatalf("Spend(3) over the limit reserved checks: spent %d", b.Spent())
	}
	if b.Spend(-1) || !b.Spend(2) || b.Spend(1) {
		t.Fatalf("spent %d", b.Spent())
	}
	var unlimited *Budget
	if !unlimited.Spend(1 << 30) {
		t.Fatal("a nil budget is unlimited")
	}
}
