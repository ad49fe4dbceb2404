-- Argo CD health check for lazyoci.io/ChartMirror.
--
-- Install it in argocd-cm as resource.customizations.health.lazyoci.io_ChartMirror (see the
-- chart's README). It follows the conditions ChartMirror shares with Flux (kstatus):
-- Ready is always present; Reconciling and Stalled are present only when True.
--
-- Written for Argo CD's Lua (gopher-lua, Lua 5.1): no Lua 5.3+ syntax, no libraries beyond
-- base, string and table. Tested by tests/argocd_health.rs against health_test.yaml.
local hs = {}

local function describe(c)
  if c.reason ~= nil and c.reason ~= "" and c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  elseif c.message ~= nil and c.message ~= "" then
    return c.message
  elseif c.reason ~= nil then
    return c.reason
  end
  return ""
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion"
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "ChartMirror is suspended"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the lazyoci operator"
  return hs
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = -1
if obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
local reconciling = nil
local stalled = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Reconciling" and c.status == "True" then
    reconciling = c
  elseif c.type == "Stalled" and c.status == "True" then
    stalled = c
  end
end

if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- Also while Reconciling=True (retrying with backoff), as Argo CD's Flux checks do.
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

-- Ready=Unknown (a run in flight), or no Ready condition yet.
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
elseif reconciling ~= nil and reconciling.message ~= nil and reconciling.message ~= "" then
  hs.message = reconciling.message
else
  hs.message = "Reconciling"
end
return hs
