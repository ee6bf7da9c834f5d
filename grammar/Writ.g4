// Writ.g4 -- the concrete grammar of the Writ policy language.
//
// Semantics live in docs/language.md; this file only fixes spelling and precedence.
// The C++ parser is generated from this file at build time (never committed) and used only
// by compiler/parse/. Several alternatives below exist only so that common mistakes parse
// far enough to get a targeted diagnostic from compiler/cst_to_ast.cc:
//   - `effect` accepts any identifier (`allow (...)` -> "unknown effect `allow`");
//   - `relop` accepts `=`              (-> "use `==` to compare");
//   - `and` / `or` words are tokens    (-> "use `&&` / `||`");
//   - scope items are generic          (-> wrong order, `principal == "alice"`, ...).
// Precedence, loosest first: if-then-else, ||, &&, relations (non-associative),
// + -, *, unary ! -, member access.
grammar Writ;

file : statement* EOF ;

statement : annotation* (policy | ruleStmt) SEMI ;

annotation : AT ident (LPAREN STRING RPAREN)? ;

policy : effect LPAREN (scopeItem (COMMA scopeItem)*)? COMMA? RPAREN condition* obligations? ;

effect : PERMIT | FORBID | IDENT ;

// principal | principal == E | principal in E | principal is T [in E]
scopeItem : IDENT ((relop add) | (IS path (IN add)?))? ;

condition : (WHEN | UNLESS) LBRACE expr RBRACE ;

ruleStmt : RULE IF expr obligations ;

obligations : THEN obligation (COMMA obligation)* ;

obligation : ident LPAREN (obligationArg (COMMA obligationArg)*)? COMMA? RPAREN ;

obligationArg : (ident COLON)? expr ;

expr
    : IF expr THEN expr ELSE expr     # ifExpr
    | orExpr                          # plainExpr
    ;

orExpr : andExpr ((OROR | OR_WORD) andExpr)* ;

andExpr : relation ((ANDAND | AND_WORD) relation)* ;

relation
    : add (relop add)?                # compareRel
    | add HAS (ident | STRING)        # hasRel
    | add LIKE STRING                 # likeRel
    | add MATCHES STRING              # matchesRel
    | add IS path (IN add)?           # isRel
    ;

relop : EQ | NE | LT | LE | GT | GE | IN | ASSIGN ;

add : mult (addop mult)* ;

addop : PLUS | MINUS ;

mult : unary (STAR unary)* ;

unary : (BANG | MINUS)* member ;

member : primary access* ;

access
    : DOT ident (LPAREN exprList? RPAREN)?    # dotAccess
    | LBRACK STRING RBRACK                     # indexAccess
    ;

primary
    : literal                                  # literalPrimary
    | path COLONCOLON STRING                   # entityPrimary
    | IDENT LPAREN exprList? RPAREN            # callPrimary
    | IDENT                                    # varPrimary
    | LPAREN expr RPAREN                       # parenPrimary
    | LBRACK exprList? RBRACK                  # setPrimary
    | LBRACE (recordInit (COMMA recordInit)*)? COMMA? RBRACE   # recordPrimary
    ;

exprList : expr (COMMA expr)* COMMA? ;

recordInit : (ident | STRING) COLON expr ;

literal : TRUE | FALSE | INT | SUFFIXED_INT | STRING ;

path : IDENT (COLONCOLON IDENT)* ;

// Keywords are allowed where a name is expected after `.`, in `has`, annotations,
// obligation names and record keys.
ident
    : IDENT | PERMIT | FORBID | RULE | WHEN | UNLESS | IF | THEN | ELSE | IN | HAS | LIKE
    | MATCHES | IS | TRUE | FALSE | AND_WORD | OR_WORD
    ;

// ---- lexer ----

PERMIT   : 'permit' ;
FORBID   : 'forbid' ;
RULE     : 'rule' ;
WHEN     : 'when' ;
UNLESS   : 'unless' ;
IF       : 'if' ;
THEN     : 'then' ;
ELSE     : 'else' ;
IN       : 'in' ;
HAS      : 'has' ;
LIKE     : 'like' ;
MATCHES  : 'matches' ;
IS       : 'is' ;
TRUE     : 'true' ;
FALSE    : 'false' ;
AND_WORD : 'and' ;
OR_WORD  : 'or' ;

EQ       : '==' ;
NE       : '!=' ;
LE       : '<=' ;
GE       : '>=' ;
LT       : '<' ;
GT       : '>' ;
ANDAND   : '&&' ;
OROR     : '||' ;
ASSIGN   : '=' ;
BANG     : '!' ;
PLUS     : '+' ;
MINUS    : '-' ;
STAR     : '*' ;
COLONCOLON : '::' ;
COLON    : ':' ;
DOT      : '.' ;
COMMA    : ',' ;
SEMI     : ';' ;
AT       : '@' ;
LPAREN   : '(' ;
RPAREN   : ')' ;
LBRACK   : '[' ;
RBRACK   : ']' ;
LBRACE   : '{' ;
RBRACE   : '}' ;

// A number followed by letters: a duration such as `15m` or `1h30m` (validated later).
SUFFIXED_INT : [0-9]+ [a-zA-Z_] [a-zA-Z0-9_]* ;
INT      : [0-9]+ ;
IDENT    : [a-zA-Z_] [a-zA-Z0-9_]* ;

// Escapes are validated in cst_to_ast so that a bad one gets a precise diagnostic.
STRING   : '"' ( '\\' ~[\r\n] | ~["\\\r\n] )* '"' ;
UNTERMINATED_STRING : '"' ( '\\' ~[\r\n] | ~["\\\r\n] )* ;
// 'text': never valid, lexed whole so that the diagnostic covers it (-> "use double quotes").
SQ_STRING : '\'' ~['\r\n]* '\'' ;

LINE_COMMENT  : '//' ~[\r\n]* -> channel(2) ;
BLOCK_COMMENT : '/*' .*? '*/' -> channel(2) ;
UNTERMINATED_COMMENT : '/*' ( ~'*' | '*'+ ~[*/] )* '*'* EOF ;
WS       : [ \t\r\n\f]+ -> skip ;
ERROR_CHAR : . ;
