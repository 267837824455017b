package policy

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Conditions are CEL expressions over three variables:
//   - predicate: the Statement's predicate as JSON (map);
//   - statement: the whole Statement as JSON ({_type, predicateType, subject, predicate});
//   - provenance: for SLSA provenance, the version-independent view (predicate.Provenance.Map),
//     else an empty map.
// An expression must yield a bool. Evaluation is bounded by a cost limit, so a condition
// cannot stall the hook whatever the predicate holds.

const celCostLimit = 1_000_000

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

func conditionEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		celEnv, celEnvErr = cel.NewEnv(
			cel.Variable("predicate", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("statement", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("provenance", cel.MapType(cel.StringType, cel.DynType)),
			cel.CrossTypeNumericComparisons(true),
			cel.ParserRecursionLimit(64),
			cel.ParserExpressionSizeLimit(maxConditionBytes),
			ext.Strings(),
			ext.Lists(),
			ext.Sets(),
		)
	})
	return celEnv, celEnvErr
}

// condition is one compiled CEL expression.
type condition struct {
	src string
	prg cel.Program
}

func compileCondition(src string) (*condition, error) {
	if len(src) > maxConditionBytes {
		return nil, fmt.Errorf("condition is %d bytes, over the limit of %d", len(src), maxConditionBytes)
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("condition yields %s, want bool", t)
	}
	prg, err := env.Program(ast, cel.CostLimit(celCostLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, err
	}
	return &condition{src: src, prg: prg}, nil
}

// eval returns whether the condition holds. Evaluation errors (a missing field, a cost
// overrun) are failures with a cause, never a pass.
func (c *condition) eval(vars map[string]any) (bool, error) {
	out, _, err := c.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("condition yielded %s, want bool", out.Type())
	}
	return b, nil
}
